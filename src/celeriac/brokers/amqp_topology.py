"""The names, queue arguments and delay routing of the AMQP broker (``docs/design/amqp.md``).

Delayed messages wait in RabbitMQ, in a chain of ``LEVELS`` queues without plugins: level ``n``
holds a message for ``2**n`` ticks of ``TICK`` seconds (a queue-wide ``x-message-ttl``, so every
queue expires in order and none blocks another), then dead-letters it to the exchange of level
``n - 1``. A delayed message's routing key is its delay in ticks, one word per bit (most
significant first), then its queue's name; each level's topic exchange sends it into the level's
queue when its bit is 1 and on to the next level when it is 0. After level 0 the delivery
exchange routes it to its queue, which is bound there by ``LEVELS`` wildcard words and its name.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Any

from celeriac.brokers.amqp_link import AmqpOptions

TICK = 0.1  # seconds: the resolution of delays (a delay is rounded up to it)
LEVELS = 30  # 2**30 ticks: the longest delay is about 3.4 years
HOLD_TTL_MS = 1000  # a renewed delivery's copy goes back to its queue this soon after a crash


class Topology:
    """Every name this broker declares, and the arguments it declares them with."""

    def __init__(self, options: AmqpOptions, instance: str) -> None:
        self.options = options
        self.ns = options.namespace
        self.instance = instance
        self.dead = f"{self.ns}celeriac.dead"
        self.broadcasts = f"{self.ns}celeriac.broadcast"
        self.delivery = f"{self.ns}celeriac.delivery"

    def queue(self, name: str) -> str:
        """The AMQP name of the queue that tasks call ``name``."""
        return f"{self.ns}{name}"

    def queue_arguments(self) -> dict[str, Any]:
        """A work queue's arguments: priorities (classic) or quorum, and the dead letters'
        exchange, which takes what RabbitMQ itself gives up on (rejects, delivery limits)."""
        arguments: dict[str, Any] = {
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.dead,
        }
        if self.options.queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
        elif self.options.max_priority:
            arguments["x-max-priority"] = self.options.max_priority
        return arguments

    def delivery_binding(self, name: str) -> str:
        """The key binding queue ``name`` to the delivery exchange: any delay, then its name."""
        return ".".join(["*"] * LEVELS + [self.queue(name)])

    # -- the delay chain ------------------------------------------------------------------------
    def level(self, n: int) -> str:
        """The name of level ``n``'s exchange and of its queue."""
        return f"{self.ns}celeriac.delay.{n}"

    def level_arguments(self, n: int) -> dict[str, Any]:
        """Level ``n`` keeps each message ``2**n`` ticks, then passes it one level down."""
        return {
            "x-message-ttl": round((2**n) * TICK * 1000),
            "x-dead-letter-exchange": self.level(n - 1) if n else self.delivery,
        }

    def level_bindings(self, n: int) -> tuple[str, str]:
        """Level ``n``'s two binding keys: bit ``n`` set (into its queue), clear (onwards)."""
        words = ["*"] * LEVELS
        position = LEVELS - 1 - n
        words[position] = "1"
        into = ".".join(words) + ".#"
        words[position] = "0"
        return into, ".".join(words) + ".#"

    def delay_route(self, name: str, delay: float) -> tuple[str, str]:
        """The exchange and routing key that hold a message for queue ``name`` ``delay``
        seconds (rounded up to a tick, cut to the longest delay)."""
        ticks = min(max(1, math.ceil(delay / TICK - 1e-9)), 2**LEVELS - 1)
        bits = format(ticks, f"0{LEVELS}b")
        key = ".".join([*bits, self.queue(name)])
        return self.level(ticks.bit_length() - 1), key

    def levels(self) -> Iterator[int]:
        """Every level, top first."""
        return iter(range(LEVELS - 1, -1, -1))

    # -- per-key and per-instance queues ----------------------------------------------------------
    def once(self, key: str, ttl_ms: int) -> str:
        """The queue that remembers ``key`` (a hash: keys may be long); its TTL is part of the
        name because a queue's arguments cannot change."""
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        return f"{self.ns}celeriac.once.{digest}.{ttl_ms}"

    @staticmethod
    def once_arguments(ttl_ms: int) -> dict[str, Any]:
        """One message at most, a second is refused (a nack): the key is taken."""
        return {
            "x-max-length": 1,
            "x-overflow": "reject-publish",
            "x-expires": ttl_ms + 60_000,
        }

    def hold(self, name: str) -> str:
        """This instance's queue for the renewed deliveries of queue ``name``."""
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        return f"{self.ns}celeriac.hold.{self.instance}.{digest}"

    def hold_arguments(self, name: str) -> dict[str, Any]:
        """A copy that comes back here (its holder died) expired long ago: it is dead-lettered
        straight back to queue ``name``; the queue goes when unused for a while."""
        return {
            "x-message-ttl": HOLD_TTL_MS,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.queue(name),
            "x-expires": round(max(3 * self.options.consumer_timeout, 60.0) * 1000),
        }

    def stream_arguments(self) -> dict[str, Any]:
        """The broadcast log: a stream, kept ``broadcast_retention`` seconds, in small
        segments (a stream drops whole segments only)."""
        return {
            "x-queue-type": "stream",
            "x-max-age": f"{max(1, round(self.options.broadcast_retention))}s",
            "x-stream-max-segment-size-bytes": 1_000_000,
        }
