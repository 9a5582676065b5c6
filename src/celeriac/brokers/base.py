"""The broker contract: the few primitives every broker gives, and nothing more.

Delivery is at least once, through leases. ``fetch`` hands a message out under a lease: a token
and a deadline. Until the deadline passes, no other consumer can fetch it; the worker that holds
it keeps pushing the deadline forward with ``extend`` while the task runs. If that worker dies,
the deadline passes and the next ``fetch`` hands the message out again. Every call that settles a
delivery (``ack``, ``requeue``, ``dead_letter``, ``extend``) presents the token and does nothing
when the token is no longer the current one, so a worker that lost its lease (it froze, or the
network dropped) can never settle the delivery that another worker now holds.

One conformance suite (``tests/brokers/``) runs these same assertions against every broker.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from celeriac.exceptions import PublishError
from celeriac.message import Message

Clock = Callable[[], float]


@dataclass(frozen=True)
class Delivery:
    """A fetched message and the lease it is held under.

    ``tag`` names the stored message inside its broker; ``token`` proves this lease. ``attempt``
    counts how many times the message has been handed out, this time included; it starts again
    at 1 after a retry replaces the message.
    """

    body: bytes
    queue: str
    tag: str
    token: str
    attempt: int


@dataclass(frozen=True)
class DeadLetter:
    """A message the worker gave up on, with the reason."""

    tag: str
    queue: str
    body: bytes
    reason: str
    dead_at: float


@dataclass(frozen=True)
class PublishRetry:
    """How a publish tries again while the broker cannot be reached: Celery's
    ``retry_policy``. The pauses between tries start at ``interval_start`` and grow by
    ``interval_step`` up to ``interval_max`` seconds; ``max_retries`` None tries until the
    publish timeout, 0 not at all. The publish timeout bounds the whole either way.
    """

    max_retries: int | None = 3
    interval_start: float = 0.0
    interval_step: float = 0.2
    interval_max: float = 1.0

    def pauses(self) -> Iterator[float]:
        """The pause before each retry, in order (as many as ``max_retries``)."""
        tries = 0
        while self.max_retries is None or tries < self.max_retries:
            yield max(0.0, min(self.interval_start + tries * self.interval_step, self.interval_max))
            tries += 1


class Broker(abc.ABC):
    """Stores messages in named queues and hands them out under leases.

    Implementations are safe to use from several threads of one process, and from several
    processes at once. ``url`` is the address with any password masked, fit for logs.
    """

    url: str = ""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock

    def publish(self, message: Message) -> None:
        """Enqueue one message (in ``message.queue``; after ``message.eta`` if it has one).

        Raises:
            PublishError: the message was not enqueued.
        """
        self.publish_many([message])

    @abc.abstractmethod
    def publish_many(self, messages: Sequence[Message]) -> None:
        """Enqueue several messages in one round trip; all are stored, or an error is raised.

        Raises:
            PublishError: the messages were not enqueued.
        """

    def publish_retrying(
        self, messages: Sequence[Message], retry: PublishRetry, *, timeout: float
    ) -> None:
        """``publish_many``, tried again after a ``PublishError`` as ``retry`` says, all
        within ``timeout`` seconds. A broker that waits for its store itself (Redis) waits by
        ``retry`` instead of its own backoff.

        Raises:
            PublishError: the messages were not enqueued, after the last try.
        """
        deadline = time.monotonic() + timeout
        pauses = retry.pauses()
        while True:
            try:
                self.publish_many(messages)
                return
            except PublishError:
                pause = next(pauses, None)
                if pause is None or time.monotonic() + pause >= deadline:
                    raise
            time.sleep(pause)

    @abc.abstractmethod
    def publish_once(self, message: Message, key: str, *, ttl: float) -> bool:
        """Enqueue ``message`` unless a message was published under ``key`` in the last ``ttl``
        seconds; True if it was enqueued now.

        The key is kept after the message is consumed, so the step that publishes a workflow's
        next task (a chord's body, a DAG node) can run again after a crash without enqueuing it
        twice. Checking the key and enqueuing are one atomic step.

        Raises:
            PublishError: the message was not enqueued.
        """

    @abc.abstractmethod
    def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, consumer: str, timeout: float
    ) -> list[Delivery]:
        """Lease up to ``limit`` ready messages, highest priority first, then oldest first.

        A message is ready when its ETA has passed and it is not under a live lease (a lease
        whose deadline passed counts as released). Waits up to ``timeout`` seconds for the first
        message, and returns an empty list if none came.

        Raises:
            BrokerError: the broker cannot be reached.
        """

    @abc.abstractmethod
    def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Remove delivered messages for good; False where the lease was no longer held."""

    def ack(self, delivery: Delivery) -> bool:
        """Remove one delivered message for good; False if the lease was no longer held."""
        return self.ack_many([delivery])[0]

    @abc.abstractmethod
    def extend(self, deliveries: Sequence[Delivery], lease: float) -> list[bool]:
        """Push the lease deadlines ``lease`` seconds from now; False where a lease was lost."""

    @abc.abstractmethod
    def requeue(
        self, delivery: Delivery, *, message: Message | None = None, eta: float | None = None
    ) -> bool:
        """Give a delivered message back, ready now or at ``eta``.

        With ``message``, the stored message is replaced (a retry) and its attempt count starts
        again; without it, the attempt count is kept, so a message that keeps killing its
        worker can be recognised. False if the lease was no longer held.
        """

    @abc.abstractmethod
    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Move a delivered message to the dead-letter store; False if the lease was lost."""

    @abc.abstractmethod
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters, newest first."""

    @abc.abstractmethod
    def requeue_dead_letters(self, tags: Sequence[str] | None, queue: str | None = None) -> int:
        """Put dead letters back in a queue as new messages (ready now, priority 0, attempt
        count from 0) and remove them from the dead-letter store; return how many moved.

        ``tags`` names them (``DeadLetter.tag``; None: every one); each goes back to the
        queue it died in, or to ``queue`` when given. The bytes are published as they were
        kept (the broker never parses them). Tags that are not dead letters are skipped.

        Raises:
            BrokerError: the broker cannot be reached.
        """

    @abc.abstractmethod
    def delete_dead_letters(self, tags: Sequence[str] | None) -> int:
        """Delete dead letters for good (``tags``; None: every one); return how many went.

        Raises:
            BrokerError: the broker cannot be reached.
        """

    @abc.abstractmethod
    def recover(self) -> int:
        """Release leases whose deadline has passed; return how many messages came back."""

    @abc.abstractmethod
    def queue_lengths(self, queues: Sequence[str]) -> dict[str, int]:
        """How many messages each queue holds (ready, delayed and leased)."""

    @abc.abstractmethod
    def purge(self, queues: Sequence[str]) -> int:
        """Delete every message not under a live lease; return how many were deleted."""

    @abc.abstractmethod
    def broadcast(self, payload: bytes, *, ttl: float = 86400.0) -> None:
        """Append a control message that every consumer reads, kept for ``ttl`` seconds.

        Raises:
            PublishError: the control message was not stored.
        """

    @abc.abstractmethod
    def read_broadcasts(self, cursor: str | None) -> tuple[list[bytes], str]:
        """Control messages after ``cursor`` (all kept ones when None), and the new cursor."""

    def batch(self) -> contextlib.AbstractContextManager[object]:
        """Group the calls made inside into one atomic step, where the store allows it.

        The SQLite broker runs them in one transaction, which also takes in the writes of a
        SQLite result backend on the same file: a result is stored if and only if its message
        is settled. Elsewhere this does nothing, and the calls stay separate.
        """
        return contextlib.nullcontext()

    def close(self) -> None:
        """Release connections; the broker may be used again and reconnects."""

    # -- from asyncio code (docs/design/asyncio.md): a thread here, a native client on Redis ----
    async def apublish_many(self, messages: Sequence[Message]) -> None:
        """:meth:`publish_many` from a coroutine, without blocking the event loop. By default
        in a thread of the loop's executor (SQLite's driver and the memory broker's lock have
        no asyncio side); the Redis broker publishes on redis-py's asyncio client instead.

        Raises:
            PublishError: the messages were not enqueued.
        """
        await asyncio.to_thread(self.publish_many, messages)

    async def apublish_retrying(
        self, messages: Sequence[Message], retry: PublishRetry, *, timeout: float
    ) -> None:
        """:meth:`publish_retrying` from a coroutine (see :meth:`apublish_many`).

        Raises:
            PublishError: the messages were not enqueued, after the last try.
        """
        await asyncio.to_thread(self.publish_retrying, messages, retry, timeout=timeout)

    async def aprepare_clock(self) -> None:
        """Make sure that the next :attr:`clock` reading does not wait on the network, so that
        building a message in a coroutine does not block the loop. Nothing to do by default: a
        broker whose clock is remote (Redis reads its server's once a minute) reads it here."""
