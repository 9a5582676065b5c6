"""What the AMQP broker keeps beside its work queues: dead letters, delayed messages seen from
outside the chain, ``publish_once`` keys, and the broadcast log (``docs/design/amqp.md``).

The dead-letter queue and the delay chain are read by a *scan*: every message is taken
(``basic.get``, up to ``scan_limit``), then each is acknowledged (removed) or rejected with
requeue (which puts it back in its place). A scan is for rare calls (the dead-letter CLI,
``queue_lengths``, ``purge``); while one runs, the messages it holds are hidden from others.
All of these run under the broker's lock (``Link.lock``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.brokers.amqp_link import amqp
from celeriac.brokers.amqp_wire import (
    ATTEMPT,
    ETA,
    PUBLISHED,
    QUEUE,
    Held,
    body_of,
    build,
    headers_of,
    number,
    priority_of,
)
from celeriac.brokers.base import DeadLetter
from celeriac.exceptions import PublishError
from celeriac.message import Message

if TYPE_CHECKING:
    from celeriac.brokers.amqp import AmqpBroker

REASON = "c-reason"
DEAD_AT = "c-dead"
EXPIRES = "c-exp"
MARKER = "c-mark"
MARKER_WAIT = 5.0  # seconds a read waits for its own broadcasts to come back from the stream
ONCE_TRIES = 5


class _Scan:
    """Every message of one queue, taken for a moment; then each is kept or removed."""

    def __init__(self, broker: AmqpBroker, queue: str) -> None:
        self.channel = broker.link.channel("scan")
        self.messages: list[Any] = []
        while len(self.messages) < broker.options.scan_limit:
            message = self.channel.basic_get(queue)
            if message is None:
                break
            self.messages.append(message)

    def settle(self, remove: Iterable[Any]) -> None:
        """Remove ``remove``; put every other message back in its place."""
        gone = {id(m) for m in remove}
        for message in self.messages:
            tag = message.delivery_info["delivery_tag"]
            if id(message) in gone:
                self.channel.basic_ack(tag)
            else:
                self.channel.basic_reject(tag, requeue=True)


class DeadLetterStore:
    """The dead-letter queue: ours (with a reason) and RabbitMQ's own (``x-death``)."""

    def __init__(self, broker: AmqpBroker) -> None:
        self.broker = broker

    def _queue(self) -> str:
        name = self.broker.names.dead
        self.broker.link.declare_queue(name, {})
        return name

    def bury(self, tag: str, held: Held, reason: str, now: float) -> None:
        """Store a dead letter (confirmed), before its delivery is acknowledged."""
        wire = build(
            body_of(held.message),
            tag=tag,
            queue=held.queue,
            attempt=held.attempt,
            extra={REASON: reason, DEAD_AT: now},
        )
        self.broker.link.publish([("", self._queue(), wire)], self.broker.out.deadline())

    def _letter(self, message: Any) -> DeadLetter:
        headers = headers_of(message)
        queue, reason = str(headers.get(QUEUE, "")), headers.get(REASON)
        dead_at = number(headers, DEAD_AT, number(headers, PUBLISHED))
        deaths = headers.get("x-death")
        if reason is None and isinstance(deaths, list) and deaths:  # RabbitMQ's own
            death = deaths[0]
            reason = f"rabbitmq: {death.get('reason', '')}"
            queue = queue or str(death.get("queue", "")).removeprefix(self.broker.names.ns)
        tag = str(message.properties.get("message_id") or "")
        return DeadLetter(tag, queue, body_of(message), str(reason or ""), dead_at)

    def newest(self, limit: int) -> list[DeadLetter]:
        """The newest ``limit`` dead letters, newest first."""
        if limit <= 0:
            return []
        scan = _Scan(self.broker, self._queue())
        scan.settle(())
        return [self._letter(m) for m in reversed(scan.messages)][:limit]

    def requeue(self, tags: Sequence[str] | None, queue: str | None) -> int:
        """Publish the dead letters named (all when None) as new messages, then remove them."""
        if tags is not None and not tags:
            return 0
        scan = _Scan(self.broker, self._queue())
        chosen = [m for m in scan.messages if tags is None or self._letter(m).tag in set(tags)]
        items = []
        for message in chosen:
            letter = self._letter(message)
            fresh = _Raw(letter.body, queue or letter.queue)
            items.append(self.broker.out.item(fresh))
        try:
            if items:
                self.broker.link.publish(items, self.broker.out.deadline())
        except PublishError:
            scan.settle(())
            raise
        scan.settle(chosen)
        return len(chosen)

    def delete(self, tags: Sequence[str] | None) -> int:
        """Remove the dead letters named (all when None)."""
        if tags is not None and not tags:
            return 0
        scan = _Scan(self.broker, self._queue())
        chosen = [m for m in scan.messages if tags is None or self._letter(m).tag in set(tags)]
        scan.settle(chosen)
        return len(chosen)


class _Raw(Message):
    """Bytes kept as they were, to publish again (the broker never parses them)."""

    def __init__(self, raw: bytes, queue: str) -> None:
        super().__init__(id="", task="", body=b"", queue=queue)
        object.__setattr__(self, "_raw", raw)

    def encode(self) -> bytes:
        raw: bytes = object.__getattribute__(self, "_raw")
        return raw


class DelayedMessages:
    """The delayed messages, read from outside the chain: counted, purged, and (with a test
    clock) moved out when that clock says they are due."""

    def __init__(self, broker: AmqpBroker) -> None:
        self.broker = broker

    def _levels(self) -> list[str]:
        """The levels holding messages now."""
        self.broker.out.declare_chain()
        channel = self.broker.link.channel("pub")
        busy = []
        for n in self.broker.names.levels():
            name = self.broker.names.level(n)
            _, count, _ = channel.queue_declare(
                name,
                durable=True,
                auto_delete=False,
                arguments=self.broker.names.level_arguments(n),
            )
            if count:
                busy.append(name)
        return busy

    def counts(self) -> dict[str, int]:
        """How many delayed messages each queue has."""
        counts: dict[str, int] = {}
        for level in self._levels():
            scan = _Scan(self.broker, level)
            scan.settle(())
            for message in scan.messages:
                queue = str(headers_of(message).get(QUEUE, ""))
                counts[queue] = counts.get(queue, 0) + 1
        return counts

    def purge(self, queues: set[str]) -> int:
        """Remove the delayed messages of ``queues``; return how many."""
        removed = 0
        for level in self._levels():
            scan = _Scan(self.broker, level)
            chosen = [m for m in scan.messages if headers_of(m).get(QUEUE) in queues]
            scan.settle(chosen)
            removed += len(chosen)
        return removed

    def sweep(self) -> None:
        """Move the messages whose ETA the broker's clock has passed to their queues."""
        if f"{self.broker.names.ns}celeriac.delay" not in self.broker.link.declared:
            return  # a test clock's delayed messages are this broker's: none were sent yet
        now = self.broker.clock()
        for level in self._levels():
            scan = _Scan(self.broker, level)
            due = [m for m in scan.messages if number(headers_of(m), ETA) <= now]
            items = []
            for message in due:
                headers = headers_of(message)
                queue = str(headers.get(QUEUE, ""))
                wire = build(
                    body_of(message),
                    tag=str(message.properties.get("message_id")),
                    queue=queue,
                    priority=priority_of(message),
                    attempt=int(number(headers, ATTEMPT)),
                )
                wire.properties["application_headers"][PUBLISHED] = number(headers, PUBLISHED)
                items.append(("", self.broker.out.declare(queue), wire))
            if items:
                self.broker.link.publish(items, self.broker.out.deadline())
            scan.settle(due)


class OnceKeys:
    """``publish_once`` keys, kept in RabbitMQ: one queue per key that holds one token at most
    (``x-max-length`` 1 with ``reject-publish``). Publishing the token is the atomic step: the
    queue takes it (the key was free) or refuses it with a nack (taken). The token expires
    after ``ttl`` (a per-message TTL); a token the broker's clock says has expired is removed."""

    def __init__(self, broker: AmqpBroker) -> None:
        self.broker = broker

    def publish(self, message: Message, key: str, ttl: float, mine: str) -> bool:
        """Publish ``message`` unless ``key`` is taken; ``mine`` names this call's token, so
        that a try cut short by a dropped connection is recognised by the next."""
        broker, link = self.broker, self.broker.link
        ttl_ms = max(1, round(ttl * 1000))
        name = broker.names.once(key, ttl_ms)
        link.declare_queue(name, broker.names.once_arguments(ttl_ms))
        for _ in range(ONCE_TRIES):
            token = amqp.Message(
                b"",
                delivery_mode=2,
                message_id=mine,
                expiration=str(ttl_ms),
                application_headers={EXPIRES: broker.clock() + ttl},
            )
            if link.publish([("", name, token)], broker.out.deadline(), nack_ok=True):
                try:
                    link.publish([broker.out.item(message)], broker.out.deadline())
                except PublishError:
                    self._take_token(name, mine, always=True)
                    raise
                return True
            if not self._take_token(name, mine, always=False):
                return False
        return False

    def _take_token(self, name: str, mine: str, *, always: bool) -> bool:
        """Remove the key's token if it has expired by our clock, or is this call's own (an
        earlier try whose message may not have been published: at least once), or
        ``always``; True if the key may be free now (removed, or already gone)."""
        channel = self.broker.link.channel("scan")
        token = channel.basic_get(name)
        if token is None:
            time.sleep(0.01)  # another process holds it for a moment, or it just expired
            return True
        expired = number(headers_of(token), EXPIRES) <= self.broker.clock()
        if always or expired or token.properties.get("message_id") == mine:
            channel.basic_ack(token.delivery_info["delivery_tag"])
            return True
        channel.basic_reject(token.delivery_info["delivery_tag"], requeue=True)
        return False


class BroadcastLog:
    """The control messages: a RabbitMQ stream, which every reader reads whole without taking
    anything from it (a late worker reads the revocations still kept). Each process follows the
    stream with one consumer and keeps the live entries in memory; a cursor is a stream offset.

    On (re)connecting, the reader appends a marker and reads from the first offset up to it, so
    it knows it has read all that was kept. Each message carries its own expiry (``c-exp``);
    the stream drops what is older than ``broadcast_retention``.
    """

    def __init__(self, broker: AmqpBroker) -> None:
        self.broker = broker
        self.entries: list[tuple[int, float, bytes]] = []  # offset, expires, payload
        self.last = -1
        self.awaited: set[str] = set()  # message ids appended by us and not read back yet
        self.generation = -1

    def _stream(self) -> str:
        name = self.broker.names.broadcasts
        self.broker.link.declare_queue(name, self.broker.names.stream_arguments())
        return name

    def _on_message(self, message: Any) -> None:
        headers = headers_of(message)
        offset = int(number(headers, "x-stream-offset", -1))
        self.awaited.discard(str(message.properties.get("message_id")))
        if offset > self.last:
            self.last = offset
            if MARKER not in headers:
                self.entries.append((offset, number(headers, EXPIRES), body_of(message)))
        message.channel.basic_ack(message.delivery_info["delivery_tag"])

    def _follow(self) -> None:
        link = self.broker.link
        if self.generation == link.generation:
            return
        self.entries, self.last, self.awaited = [], -1, set()
        stream = self._stream()
        channel = link.channel("log")
        channel.basic_qos(0, 1000, False)
        channel.basic_consume(
            stream, callback=self._on_message, arguments={"x-stream-offset": "first"}
        )
        self.generation = link.generation
        self._append(b"", {MARKER: 1})

    def _append(self, payload: bytes, headers: dict[str, Any]) -> None:
        from celeriac.brokers.amqp_link import new_id

        tag = new_id()
        wire = amqp.Message(payload, delivery_mode=2, message_id=tag, application_headers=headers)
        self.broker.link.publish([("", self._stream(), wire)], self.broker.out.deadline())
        self.awaited.add(tag)

    def append(self, payload: bytes, ttl: float) -> None:
        """Append a control message, kept ``ttl`` seconds by the broker's clock."""
        self._follow()
        self._append(payload, {EXPIRES: self.broker.clock() + ttl})

    def read(self, cursor: str | None) -> tuple[list[bytes], str]:
        """The live control messages after ``cursor`` (all when None), and the new cursor."""
        self._follow()
        link = self.broker.link
        until = time.monotonic() + MARKER_WAIT
        while self.awaited and time.monotonic() < until:
            link.drain(0.05)
        for _ in range(1000):  # take in what has arrived, without waiting
            if not link.drain(0):
                break
        now = self.broker.clock()
        self.entries = [e for e in self.entries if e[1] > now]
        after = int(cursor) if cursor and cursor.lstrip("-").isdigit() else -1
        payloads = [payload for offset, _, payload in self.entries if offset > after]
        return payloads, str(max(self.last, after))
