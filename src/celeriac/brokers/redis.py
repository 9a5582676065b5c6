"""The Redis broker: every worker on every host shares one Redis.

The key layout is in ``celeriac/_redis/keys.py`` and ``docs/design/redis.md``; every step that
touches more than one key is a Lua script in ``redis_lua/`` beside this file, whose header lists
the keys and arguments it uses. In short: a message is two fields of one hash, named after its
tag (its bytes; its priority, attempt count and, while leased, its lease token); a queue is a
sorted set of ready tags by rank (priority, then age) and a sorted set of pending tags by the
time they come due (a delayed message's ETA, a leased message's deadline). Those times are
compared, inside the scripts, with Redis's own clock, so the clocks of worker hosts do not
matter. A fetch that finds nothing blocks on the queues' wake-up lists (``BLPOP``), never
polling, for no longer than the next ETA or lease deadline. Inside ``batch()``, settlements
wait to run with the next fetch, in one script and one round trip
(``celeriac/_redis/database.py``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from celeriac._redis.connect import (
    REFUSED,
    TRANSIENT,
    RedisError,
    RedisOptions,
    as_bytes,
    flags_of,
    script_now,
)
from celeriac._redis.database import open_database
from celeriac._redis.keys import BrokerKeys, glob_escape
from celeriac._redis.scripts import Arg
from celeriac.brokers.base import Broker, Clock, DeadLetter, Delivery, PublishRetry
from celeriac.brokers.redis_calls import (
    SettleOperation,
    Tokens,
    deliveries_of,
    log_refusals,
    queue_keys,
    settle_call,
)
from celeriac.exceptions import BrokerError, CeleriacError, PublishError
from celeriac.message import Message

SCRIPTS = ("publish", "fetch", "settle", "extend", "recover", "purge", "broadcast", "deadletters")
CHUNK = 500  # messages or settlements per script call, so that one call never blocks Redis long
MIN_BLOCK = 0.001  # seconds: BLPOP's timeout 0 would mean "for ever"
BROADCAST_NEWS = 0.05  # seconds for which a fetch's report of the newest broadcast is trusted
_NO_NEWS = (float("-inf"), "")
T = TypeVar("T")


def _backoff() -> Iterator[float]:
    """The built-in pauses between a publish's tries: 0.05 s doubling to 1 s, without end."""
    return itertools.chain((0.05 * 2**n for n in range(5)), itertools.repeat(1.0))


log = logging.getLogger("celeriac.broker")


class _ClockWait(threading.local):
    """This thread's last wait for Redis's clock: (when it ended, how long it took); see
    :meth:`RedisBroker._read_clock`."""

    clock_wait: tuple[float, float] | None = None


class RedisBroker(Broker):
    """A broker on one Redis server (or the master a Sentinel names); see the module docstring.

    ``publish_timeout`` bounds a send: reading the clock for it, then the publish, which
    keeps trying while Redis is unreachable (see :meth:`_read_clock`). ``clock`` is for tests:
    when given, scripts use its time instead of Redis's.
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
        super().__init__(clock=clock or self._read_clock)
        self.url = self.db.url
        self.publish_timeout = publish_timeout
        self._test_clock = clock
        self._local = _ClockWait()
        self.keys = BrokerKeys(self.db.options.global_keyprefix)
        self._scripts = {name: self.db.script("celeriac.brokers", name) for name in SCRIPTS}
        # Each BLPOP must end well within the socket timeout, or redis-py calls Redis dead.
        self._block_slice = max(0.05, min(2.0, self.db.options.socket_timeout / 2))
        self._tokens = Tokens()
        self._publish_keys: dict[str, list[str]] = {}  # queue -> publish.lua's keys, no once key
        # (when, id): the newest broadcast's id, as the latest fetch that leased messages saw it
        self._newest_broadcast: tuple[float, str] = _NO_NEWS

    def _errors(
        self, what: str, error: type[CeleriacError] = BrokerError
    ) -> contextlib.AbstractContextManager[None]:
        return self.db.errors(what, error)

    def _now(self) -> str:
        return script_now(self._test_clock)

    def _queue_keys(self, queues: Sequence[str]) -> list[str]:
        return queue_keys(self.keys, queues)

    # -- the clock -------------------------------------------------------------------------------
    def _read_clock(self) -> float:
        """Redis's clock (``RedisClock``): this broker's ``clock``.

        A send reads the clock (to time its countdown and expiry), then publishes. The clock
        asks Redis only once a minute; when it does, it waits no longer than
        ``publish_timeout``, and what it waited is taken off the time of the next publish of
        this thread (within ``publish_timeout``), so that the two fit one ``publish_timeout``.
        """
        clock = self.db.clock
        if not clock.due():
            return clock()
        started = time.monotonic()
        with self.db.deadline(started + self.publish_timeout):
            now = clock()
        ended = time.monotonic()
        self._local.clock_wait = (ended, ended - started)
        return now

    def _send_started(self, now: float) -> float:
        """When the send publishing now started: now, less what its clock read waited."""
        wait = self._local.clock_wait
        if wait is None:
            return now
        self._local.clock_wait = None
        ended, waited = wait
        return now - waited if now - ended < self.publish_timeout else now

    # -- publishing ------------------------------------------------------------------------------
    def publish(self, message: Message) -> None:
        """Enqueue one message; see :meth:`Broker.publish`. Every ``delay()`` comes here: one
        script call, its keys made once per queue.

        Raises:
            PublishError: Redis did not take the message within ``publish_timeout``.
        """
        self._within_timeout(self._send_one, "task not enqueued", None, message)

    def publish_many(self, messages: Sequence[Message]) -> None:
        """Enqueue messages in one round trip (one transaction); see
        :meth:`Broker.publish_many`.

        Raises:
            PublishError: Redis did not take the messages within ``publish_timeout``.
        """
        if len(messages) == 1:
            self.publish(messages[0])
        elif messages:
            self._publish(messages, None)

    def publish_retrying(
        self, messages: Sequence[Message], retry: PublishRetry, *, timeout: float
    ) -> None:
        """Enqueue messages, pausing between tries while Redis is unreachable as ``retry``
        says (instead of the built-in backoff), within ``publish_timeout``; see
        :meth:`Broker.publish_retrying`.

        Raises:
            PublishError: Redis refused them, or the tries ran out or the time did.
        """
        if messages:
            write = functools.partial(self._send, messages, None)
            self._within_timeout(write, "task not enqueued", retry.pauses())

    def publish_once(self, message: Message, key: str, *, ttl: float) -> bool:
        """Enqueue unless ``key`` was used within ``ttl``; see :meth:`Broker.publish_once`.

        Raises:
            PublishError: Redis did not take the message within ``publish_timeout``.
        """
        return self._publish([message], (key, ttl)) == 1

    def _publish(self, messages: Sequence[Message], once: tuple[str, float] | None) -> int:
        """Run ``publish.lua`` within the publish timeout; see :meth:`_within_timeout`."""
        return self._within_timeout(lambda: self._send(messages, once), "task not enqueued")

    def _within_timeout(
        self,
        write: Callable[..., T],
        failure: str,
        pauses: Iterator[float] | None = None,
        *args: Any,
    ) -> T:
        """Send what this thread's batch queued, then ``write(*args)``, trying again while Redis is
        unreachable (after each of ``pauses``, else with backoff), all within
        ``publish_timeout`` from the start of the send.

        Every try ends by the deadline: a frozen Redis holds none longer. A try cut short may
        still be applied if Redis wakes later.

        Raises:
            PublishError: Redis refused the write, or did not take it in time (``failure``
                starts the message).
        """
        first = self._send_started(time.monotonic())
        deadline = first + self.publish_timeout
        with self.db.deadline(deadline):
            if self.db.batch_state() is not None:
                with self._errors("a batch before a publish", PublishError):
                    self.db.flush()  # what this thread's batch queued is not retried with it
            while True:
                try:
                    return write(*args)
                except REFUSED as exc:
                    raise PublishError(
                        f"{failure}: Redis at {self.url} refused the connection:"
                        f" {type(exc).__name__}: {exc}"
                    ) from exc
                except TRANSIENT as exc:
                    now = time.monotonic()
                    pauses = _backoff() if pauses is None else pauses
                    pause = next(pauses, None)
                    if pause is None or now + pause >= deadline:
                        raise PublishError(
                            f"{failure}: Redis at {self.url} unreachable (tried for"
                            f" {now - first:.1f}s, broker_publish_timeout="
                            f"{self.publish_timeout:g}s): {type(exc).__name__}: {exc}"
                        ) from exc
                except RedisError as exc:
                    raise PublishError(
                        f"{failure}: Redis at {self.url} refused it: {type(exc).__name__}: {exc}"
                    ) from exc
                time.sleep(pause)

    def _send_one(self, message: Message) -> int:
        """``publish.lua`` for one message, after the batch was sent (:meth:`_within_timeout`)."""
        keys = self._publish_keys.get(message.queue)
        if keys is None:
            keys = self._publish_keys[message.queue] = [
                self.keys.seq,
                self.keys.messages,
                self.keys.once(""),
                *self.keys.queue_keys(message.queue),
            ]
        eta = "" if message.eta is None else repr(float(message.eta))
        now = "" if self._test_clock is None else self._now()
        args: list[Arg] = [now, "", 1, message.priority, eta, message.encode()]
        return int(self.db.call(self._scripts["publish"], keys, args))

    def _send(self, messages: Sequence[Message], once: tuple[str, float] | None) -> int:
        keys = self.keys
        once_key = keys.once(once[0]) if once else keys.once("")
        head: list[Arg] = [self._now(), repr(float(once[1])) if once else ""]
        script = self._scripts["publish"]
        if len(messages) == 1:
            m = messages[0]
            eta = "" if m.eta is None else repr(float(m.eta))
            script_keys = [keys.seq, keys.messages, once_key, *keys.queue_keys(m.queue)]
            args = [*head, 1, m.priority, eta, m.encode()]
            return int(self.db.run(script, script_keys, args))
        queues = list(dict.fromkeys(m.queue for m in messages))
        number = {queue: n for n, queue in enumerate(queues, 1)}
        script_keys = [keys.seq, keys.messages, once_key, *self._queue_keys(queues)]
        bodies: list[Arg] = []
        for m in messages:
            eta = "" if m.eta is None else repr(float(m.eta))
            bodies += [number[m.queue], m.priority, eta, m.encode()]
        if len(messages) <= CHUNK:
            return int(self.db.run(script, script_keys, head + bodies))
        # One transaction: all chunks are stored, or (if the connection drops before EXEC) none.
        # With their source: an EVALSHA that Redis lost would fail alone, the others stored.
        chunks = [
            script.eval_command(script_keys, head + bodies[start : start + CHUNK * 4])
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
        keys = [self.keys.messages, self.keys.broadcasts_last, *self._queue_keys(queues)]
        waiting = "1" if timeout > 0 else ""
        with self._errors("fetch"):
            token = self._tokens.new()
            args: list[Arg] = [self._now(), limit, repr(float(lease)), token, waiting]
            reply = self.db.run(self._scripts["fetch"], keys, args)
            while True:
                deliveries, due_in, newest = deliveries_of(queues, token, reply)
                if newest:
                    self._newest_broadcast = (time.monotonic(), newest)
                remaining = until - time.monotonic()
                if deliveries or remaining <= 0:
                    return deliveries
                # Block until woken by a publish (or a requeue, or another fetch leaving work
                # behind), or until the next ETA or lease deadline; the fetch is sent in the
                # same write, so that Redis runs it the moment the BLPOP returns.
                pause = max(min(remaining, self._block_slice, due_in or remaining), MIN_BLOCK)
                token = self._tokens.new()
                args = [self._now(), limit, repr(float(lease)), token, waiting]
                fetch = self._scripts["fetch"].command(keys, args)  # by SHA: it comes last
                reply = self.db.direct_execute([("BLPOP", *wake, pause), fetch])[-1]

    # -- settling --------------------------------------------------------------------------------
    def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Delete delivered messages; see :meth:`Broker.ack_many`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        return self._settle([SettleOperation("ack", d) for d in deliveries], "ack")

    def requeue(
        self, delivery: Delivery, *, message: Message | None = None, eta: float | None = None
    ) -> bool:
        """Give a message back; see :meth:`Broker.requeue`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        when = "" if eta is None else repr(float(eta))
        kind = "requeue" if message is None else "replace"
        return self._settle([SettleOperation(kind, delivery, when, message)], "requeue")[0]

    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Move a message to the dead letters; see :meth:`Broker.dead_letter`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        return self._settle([SettleOperation("dead", delivery, reason)], "dead-letter")[0]

    def _settle(self, operations: Sequence[SettleOperation], what: str) -> list[bool]:
        if not operations:
            return []
        state = self.db.batch_state()
        if state is not None:
            return self._defer_settle(operations, state)
        flags: list[bool] = []
        with self._errors(what):
            for start in range(0, len(operations), CHUNK):
                keys, args = settle_call(self.keys, self._now(), operations[start : start + CHUNK])
                flags += flags_of(self.db.run(self._scripts["settle"], keys, args))
        return flags

    def _defer_settle(
        self, operations: Sequence[SettleOperation], state: dict[str, Any]
    ) -> list[bool]:
        """Queue settle operations in this thread's batch; see :meth:`batch` for the flags."""
        settled: set[str] = state.setdefault("settled", set())
        flags = []
        for s in operations:
            flags.append(s.delivery.tag not in settled)
            settled.add(s.delivery.tag)
        for start in range(0, len(operations), CHUNK):
            chunk = operations[start : start + CHUNK]
            keys, args = settle_call(self.keys, self._now(), chunk)
            expected = flags[start : start + CHUNK]
            self.db.defer(self._scripts["settle"], keys, args, log_refusals(chunk, expected))
        return flags

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
                flags += flags_of(self.db.run(self._scripts["extend"], keys, args))
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
            try:
                tag, queue, reason, dead_at = json.loads(head)
                letters.append(DeadLetter(str(tag), str(queue), body, str(reason), float(dead_at)))
            except (ValueError, TypeError):  # written by hand, or damaged: not one of ours
                log.warning("skipping a dead letter that is damaged in Redis: %r", head[:100])
        return letters

    def requeue_dead_letters(self, tags: Sequence[str] | None, queue: str | None = None) -> int:
        """Dead letters back in a queue; see :meth:`Broker.requeue_dead_letters`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        if queue:
            queues = [queue]
        else:  # the script must be given the keys of every queue it writes to
            chosen = None if tags is None else set(tags)
            letters = self.dead_letters(limit=2**31)
            queues = sorted({d.queue for d in letters if chosen is None or d.tag in chosen})
        return self._dead_letters_call("requeue", tags, queues, 1 if queue else 0)

    def delete_dead_letters(self, tags: Sequence[str] | None) -> int:
        """Delete dead letters; see :meth:`Broker.delete_dead_letters`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        return self._dead_letters_call("delete", tags, [], 0)

    def _dead_letters_call(
        self, mode: str, tags: Sequence[str] | None, queues: Sequence[str], target: int
    ) -> int:
        if tags is not None and not tags:
            return 0
        keys = [self.keys.seq, self.keys.messages, self.keys.dead, *self._queue_keys(queues)]
        which = "all" if tags is None else "some"
        args: list[Arg] = [self._now(), mode, which, target, len(queues), *queues, *(tags or [])]
        with self._errors(f"{mode} dead letters"):
            return int(self.db.run(self._scripts["deadletters"], keys, args))

    def recover(self) -> int:
        """Release expired leases in every queue; see :meth:`Broker.recover`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        prefix = self.keys.pending("")
        with self._errors("recover"):
            # The queues are found by their pending sets: a rare scan beats keeping a set of
            # queue names up to date on every publish.
            found = self.db.direct().scan_iter(match=glob_escape(prefix) + "*", count=1000)
            queues = sorted({as_bytes(key).decode().removeprefix(prefix) for key in found})
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

        Like a publish, it keeps trying while Redis is unreachable, up to ``publish_timeout``.

        Raises:
            PublishError: Redis refused it, or did not take it in time.
        """
        keys = [self.keys.broadcasts, self.keys.broadcasts_last]
        args: list[Arg] = [self._now(), repr(float(ttl)), payload]
        script = self._scripts["broadcast"]
        self._within_timeout(lambda: self.db.run(script, keys, args), "control message not sent")

    def read_broadcasts(self, cursor: str | None) -> tuple[list[bytes], str]:
        """Control messages after ``cursor``; see :meth:`Broker.read_broadcasts`.

        Raises:
            BrokerError: Redis cannot be reached.
        """
        seen, self._newest_broadcast = self._newest_broadcast, _NO_NEWS
        if cursor and seen[1] == cursor and time.monotonic() - seen[0] < BROADCAST_NEWS:
            # The fetch that just leased messages saw nothing newer: the read that follows it
            # (and only that one) needs no round trip, on the way from a publish to a task.
            return [], cursor
        with self._errors("reading broadcasts"):
            start = f"({cursor}" if cursor else "-"
            entries: Any = self.db.direct().xrange(self.keys.broadcasts, start)
        now = self.clock()
        payloads, last = [], cursor or "0-0"
        for entry_id, fields in entries:
            last = as_bytes(entry_id).decode()
            try:
                live = float(fields[b"e"]) > now
                payload = as_bytes(fields[b"p"])
            except (KeyError, TypeError, ValueError):
                log.warning("skipping control message %s: it is damaged in Redis", last)
                continue
            if live:
                payloads.append(payload)
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

    # -- from asyncio code: on redis-py's asyncio client (brokers/redis_async.py) -------------
    async def apublish_many(self, messages: Sequence[Message]) -> None:
        """:meth:`publish_many` from a coroutine; see :meth:`Broker.apublish_many`.

        Raises:
            PublishError: Redis did not take the messages within ``publish_timeout``.
        """
        from celeriac.brokers.redis_async import publish

        await publish(self, messages, None)

    async def apublish_retrying(
        self, messages: Sequence[Message], retry: PublishRetry, *, timeout: float
    ) -> None:
        """:meth:`publish_retrying` from a coroutine; see :meth:`Broker.apublish_retrying`.

        Raises:
            PublishError: Redis refused them, or the tries ran out or the time did.
        """
        from celeriac.brokers.redis_async import publish

        await publish(self, messages, retry.pauses())

    async def aprepare_clock(self) -> None:
        """Read Redis's clock now if it is due; see :meth:`Broker.aprepare_clock`."""
        from celeriac.brokers.redis_async import read_clock

        await read_clock(self)
