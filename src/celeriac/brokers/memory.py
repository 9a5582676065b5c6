"""A broker that lives in one process: real leases, delays, priorities, dead letters.

Made for tests and for the pytest plugin: it keeps every promise of the contract, but only
threads of one process can share it. ``memory://name`` gives every app in the process that uses
the same name the same broker.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from celeriac.brokers.base import Broker, Clock, DeadLetter, Delivery
from celeriac.message import Message


@dataclass
class _Stored:
    tag: str
    queue: str
    body: bytes
    priority: int
    seq: int
    available_at: float
    token: str | None = None
    attempt: int = 0


class MemoryBroker(Broker):
    """An in-process broker; see the module docstring."""

    def __init__(self, name: str = "", *, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        self.url = f"memory://{name}"
        self._cond = threading.Condition(threading.RLock())
        self._messages: dict[str, _Stored] = {}
        self._dead: list[DeadLetter] = []
        self._broadcasts: list[tuple[int, float, bytes]] = []
        self._once: dict[str, float] = {}  # publish_once keys and their expiry
        self._seq = itertools.count(1)

    def publish_many(self, messages: Sequence[Message]) -> None:
        """Enqueue messages; see :meth:`Broker.publish_many`."""
        now = self.clock()
        with self._cond:
            for message in messages:
                seq = next(self._seq)
                tag = str(seq)
                self._messages[tag] = _Stored(
                    tag=tag,
                    queue=message.queue,
                    body=message.encode(),
                    priority=message.priority,
                    seq=seq,
                    available_at=message.eta if message.eta is not None else now,
                )
            self._cond.notify_all()

    def publish_once(self, message: Message, key: str, *, ttl: float) -> bool:
        """Enqueue unless ``key`` was used within ``ttl``; see :meth:`Broker.publish_once`."""
        with self._cond:
            now = self.clock()
            if self._once.get(key, now) > now:
                return False
            self._once[key] = now + ttl
            self.publish_many([message])
            return True

    def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, consumer: str, timeout: float
    ) -> list[Delivery]:
        """Lease ready messages; see :meth:`Broker.fetch`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = self.clock()
                ready = sorted(
                    (
                        m
                        for m in self._messages.values()
                        if m.queue in queues and m.available_at <= now
                    ),
                    key=lambda m: (-m.priority, m.seq),
                )[:limit]
                if ready:
                    return [self._lease(m, lease, now) for m in ready]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(min(remaining, self._next_change(queues, now)))

    def _next_change(self, queues: Sequence[str], now: float) -> float:
        times = [m.available_at - now for m in self._messages.values() if m.queue in queues]
        return max(0.001, min(times, default=3600.0))

    def _lease(self, stored: _Stored, lease: float, now: float) -> Delivery:
        stored.token = secrets.token_hex(8)
        stored.available_at = now + lease
        stored.attempt += 1
        return Delivery(stored.body, stored.queue, stored.tag, stored.token, stored.attempt)

    def _held(self, delivery: Delivery) -> _Stored | None:
        stored = self._messages.get(delivery.tag)
        if stored is None or stored.token != delivery.token:
            return None
        return stored

    def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Remove delivered messages; see :meth:`Broker.ack_many`."""
        with self._cond:
            flags = []
            for delivery in deliveries:
                held = self._held(delivery) is not None
                if held:
                    del self._messages[delivery.tag]
                flags.append(held)
            return flags

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> list[bool]:
        """Push lease deadlines; see :meth:`Broker.extend`."""
        now = self.clock()
        with self._cond:
            flags = []
            for delivery in deliveries:
                stored = self._held(delivery)
                if stored is not None:
                    stored.available_at = now + lease
                flags.append(stored is not None)
            return flags

    def requeue(
        self, delivery: Delivery, *, message: Message | None = None, eta: float | None = None
    ) -> bool:
        """Give a message back; see :meth:`Broker.requeue`."""
        with self._cond:
            stored = self._held(delivery)
            if stored is None:
                return False
            stored.token = None
            stored.available_at = eta if eta is not None else self.clock()
            if message is not None:
                stored.body = message.encode()
                stored.queue = message.queue
                stored.priority = message.priority
                stored.attempt = 0
            self._cond.notify_all()
            return True

    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Move a message to the dead letters; see :meth:`Broker.dead_letter`."""
        with self._cond:
            stored = self._held(delivery)
            if stored is None:
                return False
            del self._messages[delivery.tag]
            self._dead.append(
                DeadLetter(stored.tag, stored.queue, stored.body, reason, self.clock())
            )
            return True

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters; see :meth:`Broker.dead_letters`."""
        with self._cond:
            return list(reversed(self._dead[-limit:])) if limit > 0 else []

    def requeue_dead_letters(self, tags: Sequence[str] | None, queue: str | None = None) -> int:
        """Dead letters back in a queue; see :meth:`Broker.requeue_dead_letters`."""
        now = self.clock()
        with self._cond:
            moving = self._take_dead(tags)
            for letter in moving:
                seq = next(self._seq)
                self._messages[str(seq)] = _Stored(
                    str(seq), queue or letter.queue, letter.body, 0, seq, now
                )
            self._cond.notify_all()
            return len(moving)

    def delete_dead_letters(self, tags: Sequence[str] | None) -> int:
        """Delete dead letters; see :meth:`Broker.delete_dead_letters`."""
        with self._cond:
            return len(self._take_dead(tags))

    def _take_dead(self, tags: Sequence[str] | None) -> list[DeadLetter]:
        """Remove and return the dead letters named (all when ``tags`` is None), oldest first."""
        wanted = None if tags is None else set(tags)
        taken = [d for d in self._dead if wanted is None or d.tag in wanted]
        self._dead = [d for d in self._dead if wanted is not None and d.tag not in wanted]
        return taken

    def recover(self) -> int:
        """Release expired leases; see :meth:`Broker.recover`."""
        now = self.clock()
        with self._cond:
            expired = [
                m for m in self._messages.values() if m.token is not None and m.available_at <= now
            ]
            for stored in expired:
                stored.token = None
            return len(expired)

    def queue_lengths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages per queue; see :meth:`Broker.queue_lengths`."""
        with self._cond:
            counts = dict.fromkeys(queues, 0)
            for stored in self._messages.values():
                if stored.queue in counts:
                    counts[stored.queue] += 1
            return counts

    def purge(self, queues: Sequence[str]) -> int:
        """Delete unleased messages; see :meth:`Broker.purge`."""
        now = self.clock()
        with self._cond:
            doomed = [
                tag
                for tag, m in self._messages.items()
                if m.queue in queues and (m.token is None or m.available_at <= now)
            ]
            for tag in doomed:
                del self._messages[tag]
            return len(doomed)

    def broadcast(self, payload: bytes, *, ttl: float = 86400.0) -> None:
        """Append a control message; see :meth:`Broker.broadcast`."""
        now = self.clock()
        with self._cond:
            self._broadcasts = [b for b in self._broadcasts if b[1] > now]
            self._broadcasts.append((next(self._seq), now + ttl, payload))

    def read_broadcasts(self, cursor: str | None) -> tuple[list[bytes], str]:
        """Control messages after ``cursor``; see :meth:`Broker.read_broadcasts`."""
        after = int(cursor) if cursor else 0
        now = self.clock()
        with self._cond:
            fresh = [b for b in self._broadcasts if b[0] > after and b[1] > now]
            last = max((b[0] for b in self._broadcasts), default=after)
            return [b[2] for b in fresh], str(max(last, after))


_named: dict[str, MemoryBroker] = {}
_named_lock = threading.Lock()


def named_broker(name: str) -> MemoryBroker:
    """The process-wide memory broker called ``name`` (created on first use)."""
    with _named_lock:
        if name not in _named:
            _named[name] = MemoryBroker(name)
        return _named[name]
