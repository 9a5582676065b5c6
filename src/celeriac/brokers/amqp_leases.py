"""The deliveries one AMQP broker holds: its leases (``docs/design/amqp.md``).

A lease is an unacknowledged delivery on the work channel plus a deadline kept here. Handing
out merges the heads of the queues asked for (highest priority first, then oldest); a head taken
but not handed out stays here as a spare (still unacknowledged, so hidden from others), to be
handed out first next time, rather than rejected back (a reject marks it redelivered).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from celeriac.brokers.amqp_link import Link, new_id
from celeriac.brokers.amqp_publish import Publisher
from celeriac.brokers.amqp_wire import (
    ATTEMPT,
    ETA,
    PUBLISHED,
    Held,
    body_of,
    build,
    headers_of,
    number,
    priority_of,
)
from celeriac.brokers.base import Clock, Delivery

REMEMBERED = 10_000  # hand-out counts remembered for messages given back


class Leases:
    """What this broker's connection holds, handed out and given back."""

    def __init__(
        self,
        link: Link,
        out: Publisher,
        clock: Clock,
        instance: str,
        sweep: Callable[[], None] | None = None,
    ) -> None:
        self.link = link
        self.out = out
        self.clock = clock
        self.instance = instance
        self.sweep = sweep  # with a test clock: moves due delayed messages out of the chain
        self.held: dict[str, Held] = {}
        self.spares: dict[str, list[Any]] = {}  # heads taken from a queue, not handed out
        self._spared_at: dict[int, float] = {}  # monotonic time, by AMQP delivery tag
        self.handouts: OrderedDict[str, int] = OrderedDict()
        self._counter = itertools.count(1)
        link.on_reset.append(self.forget)

    def forget(self) -> None:
        """The connection is gone, and with it every delivery it held."""
        self.held.clear()
        self.spares.clear()
        self._spared_at.clear()

    def spare(self, queue: str, message: Any, *, first: bool = False) -> None:
        """Keep a message taken from ``queue`` but not handed out, for the next fetch."""
        self._spared_at.setdefault(message.delivery_info["delivery_tag"], time.monotonic())
        spares = self.spares.setdefault(queue, [])
        spares.insert(0 if first else len(spares), message)

    def give_back_spares(self, *, taken_before: float = 0.0, keep: Sequence[str] = ()) -> int:
        """Reject back (in their place) the spares of queues not in ``keep``, and those taken
        before ``taken_before`` (monotonic): a spare counts towards the consumer timeout too."""
        work, given = self.link.channel("work"), 0
        for queue in list(self.spares):
            kept = []
            for message in self.spares.pop(queue):
                tag = message.delivery_info["delivery_tag"]
                if queue in keep and self._spared_at.get(tag, 0.0) >= taken_before:
                    kept.append(message)
                    continue
                work.basic_reject(tag, requeue=True)
                self._spared_at.pop(tag, None)
                given += 1
            if kept:
                self.spares[queue] = kept
        return given

    def _token(self) -> str:
        return f"{os.getpid():x}.{self.instance}.{next(self._counter):x}"

    def consume(self, queues: Sequence[str], limit: int, pushed: list[Any]) -> list[Any]:
        channel = self.link.channel("work")
        channel.basic_qos(0, limit, False)
        return [
            (channel.basic_consume(self.out.declare(q), callback=pushed.append), q) for q in queues
        ]

    def take(self, queues: Sequence[str], limit: int, lease: float) -> list[Delivery]:
        """Hand out up to ``limit`` messages, highest priority first, then oldest first."""
        self.release_expired()
        if any(queue not in queues for queue in self.spares):
            self.give_back_spares(keep=queues)  # no longer consumed (cancel_consumer)
        if self.sweep is not None:
            self.sweep()
        heads = {q: self._next(q) for q in queues}
        taken: list[Delivery] = []
        while len(taken) < limit:
            ready = [(q, m) for q, m in heads.items() if m is not None]
            if not ready:
                break
            queue, message = min(ready, key=lambda qm: _rank(qm[1]))
            delivery = self._lease(queue, message, lease)
            if delivery is not None:
                taken.append(delivery)
            heads[queue] = self._next(queue) if len(taken) < limit else None
        for queue, message in heads.items():
            if message is not None:
                self.spare(queue, message, first=True)
        return taken

    def _next(self, queue: str) -> Any:
        spares = self.spares.get(queue)
        if spares:
            message = spares.pop(0)
            self._spared_at.pop(message.delivery_info["delivery_tag"], None)
            return message
        return self.link.channel("work").basic_get(self.out.declare(queue))

    def _lease(self, queue: str, message: Any, lease: float) -> Delivery | None:
        headers = headers_of(message)
        now = self.clock()
        eta = headers.get(ETA)
        tag = str(message.properties.get("message_id") or new_id())
        if isinstance(eta, float) and eta > now:  # came out of the chain early by our clock
            self._redelay(message, queue, tag, int(number(headers, ATTEMPT)), eta)
            return None
        attempt = 1 + max(
            int(number(headers, ATTEMPT)),
            self.handouts.pop(tag, 0),
            1 if message.delivery_info.get("redelivered") else 0,
            int(number(headers, "x-delivery-count")),
        )
        token = self._token()
        self.held[tag] = Held(token, now + lease, queue, message, attempt, time.monotonic())
        return Delivery(body_of(message), queue, tag, token, attempt)

    def _redelay(self, message: Any, queue: str, tag: str, attempt: int, eta: float) -> None:
        """Publish the message again into the delay chain, then let this copy go."""
        exchange, key = self.out.route(queue, eta)
        wire = build(
            body_of(message),
            tag=tag,
            queue=queue,
            priority=priority_of(message),
            attempt=attempt,
            eta=eta,
        )
        self.link.publish([(exchange, key, wire)], self.out.deadline())
        self.link.channel("work").basic_ack(message.delivery_info["delivery_tag"])

    def release_expired(self) -> int:
        now = self.clock()
        expired = [tag for tag, held in self.held.items() if held.deadline <= now]
        for tag in expired:
            self.give_back(tag)
        return len(expired)

    def give_back(self, tag: str) -> None:
        """Return a held message to its queue, in its place, remembering its hand-outs."""
        held = self.held.pop(tag)
        self.link.channel("work").basic_reject(held.delivery_tag, requeue=True)
        self.handouts[tag] = held.attempt
        while len(self.handouts) > REMEMBERED:
            self.handouts.popitem(last=False)

    def holding(self, delivery: Delivery) -> Held | None:
        """The held delivery behind ``delivery``, if its lease is still this one."""
        held = self.held.get(delivery.tag)
        return held if held is not None and held.token == delivery.token else None


def _rank(message: Any) -> tuple[int, float]:
    return -priority_of(message), number(headers_of(message), PUBLISHED)
