"""The Redis broker: every worker on every host shares one Redis.

The key layout is in ``celeriac/redis_keys.py`` and ``docs/design/redis.md``; every step that
touches more than one key is a Lua script in ``redis_lua/`` beside this file, whose header lists
the keys and arguments it uses. In short: a message is two fields of one hash, named after its
tag (its bytes; its priority, attempt count and, while leased, its lease token); a queue is a
sorted set of ready tags by rank (priority, then age) and a sorted set of pending tags by the
time they come due (a delayed message's ETA, a leased message's deadline). Those times are
compared, inside the scripts, with Redis's own clock, so the clocks of worker hosts do not
matter. A fetch that finds
nothing blocks on the queues' wake-up lists (``BLPOP``), never polling, for no longer than the
next ETA or lease deadline.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celeriac.brokers.base import Broker, Clock, DeadLetter, Delivery
from celeriac.exceptions import BrokerError, CeleriacError, PublishError
from celeriac.message import Message
from celeriac.redis_connect import TRANSIENT, RedisError, RedisOptions, as_bytes, script_now
from celeriac.redis_db import Arg, open_database
from celeriac.redis_keys import BrokerKeys

log = logging.getLogger("celeriac.brokers.redis")
SCRIPTS = ("publish", "fetch", "settle", "extend", "recover", "purge", "broadcast")
CHUNK = 500  # messages or settlements per script call, so that one call never blocks Redis long
MIN_BLOCK = 0.001  # seconds: BLPOP's timeout 0 would mean "for ever"


@dataclass(frozen=True)
class _Settlement:
    """One operation of ``settle.lua``: ``kind`` is ack, requeue, replace or dead."""

    kind: str
    delivery: Delivery
    value: str = ""  # requeue and replace: the ETA ('' = now); dead: the reason
    message: Message | None = None  # replace: the retry's message


class RedisBroker(Broker):
    """A broker on one Redis server (or the master a Sentinel names); see the module docstring.

    ``publish_timeout`` bounds how long a publish keeps trying while Redis is unreachable.
    ``clock`` is for tests: when given, scripts use its time instead of Redis's.
    """

    def __init__(
        self,
        url: str,
        options: RedisOptions | None = None,
        *,
        publish_timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.db = open_database(url, options or RedisOptions())
        super().__init__(clock=clock or self.db.clock)
        self.url = self.db.url
        self.publish_timeout = publish_timeout
        self._test_clock = clock
        self.keys = BrokerKeys(self.db.options.global_keyprefix)
        self._scripts = {name: self.db.script("celeriac.brokers", name) for name in SCRIPTS}
        # Each BLPOP must end well within the socket timeout, or redis-py calls Redis dead.
        self._block_slice = max(0.05, min(2.0, self.db.options.socket_timeout / 2))

    def _errors(
        self, what: str, error: type[CeleriacError] = BrokerError
    ) -> contextlib.AbstractContextManager[None]:
        return self.db.errors(what, error)

    def _now(self) -> str:
        return script_now(self._test_clock)

    def _queue_keys(self, queues: Sequence[str]) -> list[str]:
        return [key for queue in queues for key in self.keys.queue_keys(queue)]

    # -- publishing ------------------------------------------------------------------------------
    def publish_many(self, messages: Sequence[Message]) -> None:
        """Enqueue messages in one round trip (one transaction); see
        :meth:`Broker.publish_many`.

        Raises:
            PublishError: Redis did not take the messages within ``publish_timeout``.
        """
        if messages:
            self._publish(messages, None)

    def publish_once(self, message: Message, key: str, *, ttl: float) -> bool:
        """Enqueue unless ``key`` was used within ``ttl``; see :meth:`Broker.publish_once`.

        Raises:
            PublishError: Redis did not take the message within ``publish_timeout``.
        """
        return self._publish([message], (key, ttl)) == 1

    def _publish(self, messages: Sequence[Message], once: tuple[str, float] | None) -> int:
        """Run ``publish.lua``, trying again while Redis is unreachable, up to the timeout.

        A try that might not end before the deadline is not started, so this returns or raises
        within ``publish_timeout`` seconds.
        """
        with self._errors("a batch before a publish", PublishError):
            self.db.flush()  # what this thread's batch queued is not retried with the publish
        deadline = time.monotonic() + self.publish_timeout
        pause = 0.05
        while True:
            started = time.monotonic()
            try:
                return self._send(messages, once)
            except TRANSIENT as exc:
                took = time.monotonic() - started
                if time.monotonic() + pause + took >= deadline:
                    raise PublishError(
                        f"task not enqueued: Redis at {self.url} unreachable for"
                        f" {self.publish_timeout:g}s: {type(exc).__name__}: {exc}"
                    ) from exc
            except RedisError as exc:
                raise PublishError(
                    f"task not enqueued: Redis at {self.url} refused it:"
                    f" {type(exc).__name__}: {exc}"
                ) from exc
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _send(self, messages: Sequence[Message], once: tuple[str, float] | None) -> int:
        queues = list(dict.fromkeys(m.queue for m in messages))
        number = {queue: str(n) for n, queue in enumerate(queues, 1)}
        keys = self.keys
        once_key = keys.once(once[0]) if once else keys.once("")
        script_keys = [keys.seq, keys.messages, keys.queues, once_key]
        script_keys += self._queue_keys(queues)
        head: list[Arg] = [self._now(), repr(float(once[1])) if once else ""]
        head += [str(len(queues)), *queues]
        bodies: list[Arg] = []
        for m in messages:
            eta = "" if m.eta is None else repr(float(m.eta))
            bodies += [number[m.queue], str(m.priority), eta, m.encode()]
        script = self._scripts["publish"]
        if len(messages) <= CHUNK:
            return int(self.db.run(script, script_keys, head + bodies))
        # One transaction: all chunks are stored, or (if the connection drops before EXEC) none.
        chunks = [
            script.command(script_keys, head + bodies[start : start + CHUNK * 4])
            for start in range(0, len(bodies), CHUNK * 4)
        ]
        replies = self.db.execute([("MULTI",), *chunks, ("EXEC",)])[-1]
        return sum(int(n) for n in replies)

    # -- fetching --------------------------------------------------------------------------------
    def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, consumer: str, timeout: float
    ) -> list[Delivery]:
        """Lease ready messages, blocking up to ``timeout``; see :meth:`Broker.fetch`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        if limit < 1:
            return []
        until = time.monotonic() + timeout
        wake = [self.keys.wake(queue) for queue in queues]
        keys = [self.keys.messages, *self._queue_keys(queues)]
        waiting = "1" if timeout > 0 else ""
        with self._errors("fetch"):
            token = secrets.token_hex(8)
            args: list[Arg] = [self._now(), limit, repr(float(lease)), token, waiting]
            reply = self.db.run(self._scripts["fetch"], keys, args)
            while True:
                deliveries, due_in = self._deliveries(queues, token, reply)
                remaining = until - time.monotonic()
                if deliveries or remaining <= 0:
                    return deliveries
                # Block until woken by a publish (or a requeue, or another fetch leaving work
                # behind), or until the next ETA or lease deadline; the fetch is sent in the
                # same write, so that Redis runs it the moment the BLPOP returns.
                pause = max(min(remaining, self._block_slice, due_in or remaining), MIN_BLOCK)
                token = secrets.token_hex(8)
                args = [self._now(), limit, repr(float(lease)), token, waiting]
                fetch = self._scripts["fetch"].command(keys, args)
                reply = self.db.direct_execute([("BLPOP", *wake, pause), fetch])[-1]

    @staticmethod
    def _deliveries(
        queues: Sequence[str], token: str, reply: Any
    ) -> tuple[list[Delivery], float | None]:
        """The deliveries in a reply of ``fetch.lua``, and (when there are none and the
        caller may wait) the seconds until something in these queues comes due."""
        now, due = reply[0], reply[1]
        rest = reply[2:]
        deliveries = [
            Delivery(
                as_bytes(rest[i + 3]),
                queues[int(rest[i + 1]) - 1],
                as_bytes(rest[i]).decode(),
                token,
                int(rest[i + 2]),
            )
            for i in range(0, len(rest), 4)
        ]
        due_in = float(due) - float(now) if due else None
        return deliveries, due_in

    # -- settling --------------------------------------------------------------------------------
    def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Delete delivered messages; see :meth:`Broker.ack_many`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        return self._settle([_Settlement("ack", d) for d in deliveries], "ack")

    def requeue(
        self, delivery: Delivery, *, message: Message | None = None, eta: float | None = None
    ) -> bool:
        """Give a message back; see :meth:`Broker.requeue`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        when = "" if eta is None else repr(float(eta))
        kind = "requeue" if message is None else "replace"
        return self._settle([_Settlement(kind, delivery, when, message)], "requeue")[0]

    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Move a message to the dead letters; see :meth:`Broker.dead_letter`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        return self._settle([_Settlement("dead", delivery, reason)], "dead-letter")[0]

    def _settle(self, settlements: Sequence[_Settlement], what: str) -> list[bool]:
        if not settlements:
            return []
        state = self.db.batch_state()
        if state is not None:
            return self._defer_settle(settlements, state)
        flags: list[bool] = []
        with self._errors(what):
            for start in range(0, len(settlements), CHUNK):
                keys, args = self._settle_call(settlements[start : start + CHUNK])
                reply = self.db.run(self._scripts["settle"], keys, args)
                flags += [flag == ord("1") for flag in as_bytes(reply)]
        return flags

    def _defer_settle(
        self, settlements: Sequence[_Settlement], state: dict[str, Any]
    ) -> list[bool]:
        """Queue settlements in this thread's batch; see :meth:`batch` for the flags."""
        settled: set[str] = state.setdefault("settled", set())
        flags = []
        for s in settlements:
            flags.append(s.delivery.tag not in settled)
            settled.add(s.delivery.tag)
        for start in range(0, len(settlements), CHUNK):
            chunk = settlements[start : start + CHUNK]
            keys, args = self._settle_call(chunk)
            expected = flags[start : start + CHUNK]

            self.db.defer(self._scripts["settle"], keys, args, _log_refusals(chunk, expected))
        return flags

    def _settle_call(self, settlements: Sequence[_Settlement]) -> tuple[list[str], list[Arg]]:
        names = [s.delivery.queue for s in settlements]
        names += [s.message.queue for s in settlements if s.message is not None]
        queues = list(dict.fromkeys(names))
        number = {queue: str(n) for n, queue in enumerate(queues, 1)}
        args: list[Arg] = [self._now(), str(len(queues)), *queues]
        for s in settlements:
            d, m = s.delivery, s.message
            args += [s.kind, number[d.queue], d.tag, d.token, s.value]
            args += [number[m.queue], str(m.priority), m.encode()] if m else ["", "", ""]
        keys = self.keys
        script_keys = [keys.messages, keys.queues, keys.dead]
        return script_keys + self._queue_keys(queues), args

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> list[bool]:
        """Push lease deadlines; see :meth:`Broker.extend`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        flags: list[bool] = []
        with self._errors("extend"):
            for start in range(0, len(deliveries), CHUNK):
                chunk = deliveries[start : start + CHUNK]
                queues = list(dict.fromkeys(d.queue for d in chunk))
                number = {queue: str(n) for n, queue in enumerate(queues, 1)}
                args: list[Arg] = [self._now(), repr(float(lease))]
                for d in chunk:
                    args += [number[d.queue], d.tag, d.token]
                keys = [self.keys.messages, *self._queue_keys(queues)]
                reply = self.db.run(self._scripts["extend"], keys, args)
                flags += [flag == ord("1") for flag in as_bytes(reply)]
        return flags

    # -- dead letters, recovery, inspection ------------------------------------------------------
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters; see :meth:`Broker.dead_letters`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        with self._errors("reading dead letters"):
            entries = self.db.direct().lrange(self.keys.dead, 0, limit - 1) if limit > 0 else []
        letters = []
        for entry in entries:
            head, _, body = as_bytes(entry).partition(b"\n")
            tag, queue, reason, dead_at = json.loads(head)
            letters.append(DeadLetter(str(tag), queue, body, reason, float(dead_at)))
        return letters

    def recover(self) -> int:
        """Release expired leases in every queue; see :meth:`Broker.recover`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        with self._errors("recover"):
            members = self.db.direct().smembers(self.keys.queues)
            queues = sorted(as_bytes(q).decode() for q in members)
            if not queues:
                return 0
            keys = [self.keys.messages, *self._queue_keys(queues)]
            return int(self.db.run(self._scripts["recover"], keys, [self._now()]))

    def queue_lengths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages per queue (ready, delayed and leased); see :meth:`Broker.queue_lengths`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        with self._errors("counting messages"), self.db.direct().pipeline(True) as pipe:
            for queue in queues:
                pipe.zcard(self.keys.ready(queue))
                pipe.zcard(self.keys.pending(queue))
            counts = pipe.execute()
        return {queue: counts[2 * i] + counts[2 * i + 1] for i, queue in enumerate(queues)}

    def purge(self, queues: Sequence[str]) -> int:
        """Delete unleased messages; see :meth:`Broker.purge`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        if not queues:
            return 0
        keys = [self.keys.messages]
        with self._errors("purge"):
            script = self._scripts["purge"]
            return int(self.db.run(script, keys + self._queue_keys(queues), [self._now()]))

    # -- broadcasts ------------------------------------------------------------------------------
    def broadcast(self, payload: bytes, *, ttl: float = 86400.0) -> None:
        """Append a control message; see :meth:`Broker.broadcast`.

        Raises:
            PublishError: Redis cannot be reached.
        """
        with self._errors("broadcast", PublishError):
            self.db.run(
                self._scripts["broadcast"],
                [self.keys.broadcasts],
                [self._now(), repr(float(ttl)), payload],
            )

    def read_broadcasts(self, cursor: str | None) -> tuple[list[bytes], str]:
        """Control messages after ``cursor``; see :meth:`Broker.read_broadcasts`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        with self._errors("reading broadcasts"):
            start = f"({cursor}" if cursor else "-"
            entries: Any = self.db.direct().xrange(self.keys.broadcasts, start)
        now = self.clock()
        payloads, last = [], cursor or "0-0"
        for entry_id, fields in entries:
            if float(fields[b"e"]) > now:
                payloads.append(as_bytes(fields[b"p"]))
                last = as_bytes(entry_id).decode()
        return payloads, last

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Send the settlements made inside (and a Redis backend's results, when it is on this
        same server) together with the batch's fetch, or at its end, in one ``MULTI``/``EXEC``:
        one round trip, and a result is stored if and only if its message is settled.

        Inside a batch, ``ack_many``, ``requeue`` and ``dead_letter`` return provisional flags:
        True unless the message was already settled earlier in the batch. One that Redis then
        refuses (its lease was lost meanwhile) is logged. Other calls send what was queued
        first. An exception inside the batch drops what it queued.

        Raises:
            BrokerError: what the batch queued could not be sent.
        """
        return self.db.batch("a batch", BrokerError)

    def close(self) -> None:
        """Close this broker's connections; the next call opens new ones."""
        self.db.disconnect()


def _log_refusals(settlements: Sequence[_Settlement], expected: Sequence[bool]) -> Any:
    """What to do with the flags of batched settlements: say which ones Redis refused."""

    def check(reply: Any) -> None:
        for s, hoped, flag in zip(settlements, expected, as_bytes(reply), strict=True):
            if hoped and flag != ord("1"):
                log.warning("%s of message %s refused: its lease was lost", s.kind, s.delivery.tag)

    return check
