"""How the AMQP broker publishes: declaring what a message needs (its queue, the delay chain),
building the AMQP message, and trying again while RabbitMQ cannot be reached, all within the
publish timeout. Every publish waits for RabbitMQ's confirm (``Link.publish``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from celeriac.brokers.amqp_link import FAILURES, ChannelError, Link, new_id
from celeriac.brokers.amqp_topology import Topology
from celeriac.brokers.amqp_wire import build
from celeriac.brokers.base import Clock
from celeriac.exceptions import PublishError
from celeriac.message import Message

T = TypeVar("T")


class Publisher:
    """Declares and publishes for one broker; see the module docstring."""

    def __init__(self, link: Link, names: Topology, clock: Clock, publish_timeout: float) -> None:
        self.link = link
        self.names = names
        self.clock = clock
        self.publish_timeout = publish_timeout

    # -- declaring -------------------------------------------------------------------------------
    def declare(self, queue: str) -> str:
        """Declare work queue ``queue`` (once per connection); return its AMQP name."""
        name = self.names.queue(queue)
        if name not in self.link.declared:
            self.link.declare_exchange(self.names.delivery)
            self.link.declare_queue(name, self.names.queue_arguments())
            binding = self.names.delivery_binding(queue)
            self.link.channel("pub").queue_bind(name, self.names.delivery, binding)
        return name

    def declare_chain(self) -> None:
        """Declare the delay chain (once per connection): its exchanges, queues, bindings."""
        marker = f"{self.names.ns}celeriac.delay"
        if marker in self.link.declared:
            return
        channel = self.link.channel("pub")
        self.link.declare_exchange(self.names.delivery)
        for n in reversed(list(self.names.levels())):  # bottom first: a level needs the next
            level = self.names.level(n)
            self.link.declare_exchange(level)
            self.link.declare_queue(level, self.names.level_arguments(n))
            into, onwards = self.names.level_bindings(n)
            channel.queue_bind(level, level, into)
            below = self.names.level(n - 1) if n else self.names.delivery
            channel.exchange_bind(below, level, onwards)
        self.link.declared.add(marker)

    # -- publishing ------------------------------------------------------------------------------
    def route(self, queue: str, eta: float | None) -> tuple[str, str]:
        """Declare what a message for ``queue`` needs; return its exchange and routing key."""
        name = self.declare(queue)
        delay = 0.0 if eta is None else eta - self.clock()
        if delay <= 0:
            return "", name
        self.declare_chain()
        return self.names.delay_route(queue, delay)

    def item(self, message: Message, eta: float | None = None) -> tuple[str, str, Any]:
        """A new message, ready to publish (held until ``eta`` when given, else its own)."""
        eta = message.eta if eta is None else eta
        exchange, key = self.route(message.queue, eta)
        wire = build(
            message.encode(),
            tag=new_id(),
            queue=message.queue,
            priority=message.priority,
            eta=eta,
        )
        return exchange, key, wire

    def send(self, make: Callable[[], T], what: str, pauses: Any = None) -> T:
        """Run ``make`` (which publishes) under the lock, trying again while RabbitMQ cannot be
        reached, all within ``publish_timeout``.

        Raises:
            PublishError: RabbitMQ refused the messages, or the time or the tries ran out.
        """
        started = time.monotonic()
        deadline = started + self.publish_timeout
        pauses = pauses if pauses is not None else _backoff()
        while True:
            with self.link.lock:
                try:
                    return make()
                except ChannelError as exc:  # a refusal (a queue declared otherwise, say)
                    self.link.reset()
                    raise PublishError(
                        f"{what}: RabbitMQ at {self.link.url} refused it:"
                        f" {type(exc).__name__}: {exc}"
                    ) from exc
                except FAILURES as exc:
                    self.link.reset()
                    error: BaseException = exc
            now = time.monotonic()
            pause = next(pauses, None)
            if pause is None or now + pause >= deadline:
                raise PublishError(
                    f"{what}: RabbitMQ at {self.link.url} unreachable (tried for"
                    f" {now - started:.1f}s,"
                    f" broker_publish_timeout={self.publish_timeout:g}s):"
                    f" {type(error).__name__}: {error}"
                ) from error
            time.sleep(pause)

    def deadline(self) -> float:
        """When a publish starting now must be confirmed by (monotonic)."""
        return time.monotonic() + self.publish_timeout


def _backoff() -> Iterator[float]:
    """The built-in pauses between a publish's tries: 0.05 s doubling to 1 s, without end."""
    return itertools.chain((0.05 * 2**n for n in range(5)), itertools.repeat(1.0))
