"""The AMQP broker: RabbitMQ through py-amqp (``docs/design/amqp.md`` says why and how).

A lease is an unacknowledged AMQP delivery plus a deadline kept here: RabbitMQ hands a message
to no one else while this connection holds it, and takes it back when the connection dies (a
killed worker, a dropped network: the heartbeat). A deadline that passes while the process
lives gives the message back (``basic.reject`` with requeue, which keeps its place). Settling a
delivery (ack, requeue, dead letter) checks the lease token first, so a stale holder changes
nothing. Publishes wait for RabbitMQ's confirm. Delayed messages wait in RabbitMQ's delay chain
(``amqp_topology.py``). A delivery held for half the server's consumer timeout is swapped for a
fresh copy (see :meth:`AmqpBroker._renew`), so a 45-minute task keeps its channel.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, TypeVar

from celeriac.brokers.amqp_leases import Leases
from celeriac.brokers.amqp_link import AmqpOptions, Link, new_id
from celeriac.brokers.amqp_publish import Publisher
from celeriac.brokers.amqp_stores import BroadcastLog, DeadLetterStore, DelayedMessages, OnceKeys
from celeriac.brokers.amqp_topology import Topology
from celeriac.brokers.amqp_wire import (
    Held,
    body_of,
    build,
    priority_of,
)
from celeriac.brokers.base import Broker, Clock, DeadLetter, Delivery, PublishRetry
from celeriac.message import Message

T = TypeVar("T")
WAIT_SLICE = 0.05  # seconds a waiting fetch sleeps, without the lock, between two reads


class AmqpBroker(Broker):
    """A broker on one RabbitMQ vhost; see the module docstring.

    ``clock`` is for tests: when given, leases, ETAs, expiries and keys follow it, and each
    fetch also moves the delayed messages it says are due out of the delay chain.
    """

    def __init__(
        self,
        url: str,
        options: AmqpOptions | None = None,
        *,
        publish_timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock=clock or time.time)
        self.options = options or AmqpOptions()
        self.link = Link(url, self.options)
        self.url = self.link.url
        self.publish_timeout = publish_timeout
        self.names = Topology(self.options, new_id()[:12])
        self.out = Publisher(self.link, self.names, self.clock, publish_timeout)
        self._linger = False  # closed while holding deliveries: close once they are settled
        self._dead = DeadLetterStore(self)
        self._broadcasts = BroadcastLog(self)
        self._once = OnceKeys(self)
        self._delays = DelayedMessages(self)
        sweep = self._delays.sweep if clock is not None else None
        self.leases = Leases(self.link, self.out, self.clock, self.names.instance, sweep)

    def publish_many(self, messages: Sequence[Message]) -> None:
        """Enqueue messages; returns once RabbitMQ confirmed every one.

        Raises:
            PublishError: RabbitMQ refused one, or could not be reached within
                ``publish_timeout``.
        """
        if messages:
            self.out.send(lambda: self._publish(messages), "task not enqueued")

    def _publish(self, messages: Sequence[Message]) -> bool:
        return self.link.publish([self.out.item(m) for m in messages], self.out.deadline())

    def publish_retrying(
        self, messages: Sequence[Message], retry: PublishRetry, *, timeout: float
    ) -> None:
        """Enqueue messages, pausing between tries as ``retry`` says, within
        ``publish_timeout``; see :meth:`Broker.publish_retrying`.

        Raises:
            PublishError: RabbitMQ refused them, or the tries or the time ran out.
        """
        if messages:
            self.out.send(lambda: self._publish(messages), "task not enqueued", retry.pauses())

    def publish_once(self, message: Message, key: str, *, ttl: float) -> bool:
        """Enqueue unless ``key`` was used within ``ttl``; see :meth:`Broker.publish_once`
        and ``OnceKeys``.

        Raises:
            PublishError: RabbitMQ refused the message or could not be reached in time.
        """
        mine = new_id()
        publish = self._once.publish
        return self.out.send(lambda: publish(message, key, ttl, mine), "task not enqueued")

    # -- fetching --------------------------------------------------------------------------------
    def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, consumer: str, timeout: float
    ) -> list[Delivery]:
        """Lease ready messages, waiting up to ``timeout`` for the first; see
        :meth:`Broker.fetch`. The wait is a consumer with a prefetch of ``limit``.

        Raises:
            BrokerError: RabbitMQ cannot be reached.
        """
        if limit < 1:
            return []
        self._linger = False
        with self.link.errors("fetch"):
            taken = self.leases.take(queues, limit, lease)
            if taken or timeout <= 0:
                return taken
            pushed: list[Any] = []
            tags = self.leases.consume(queues, limit, pushed)
            generation = self.link.generation
        until = time.monotonic() + timeout
        try:
            while not pushed and time.monotonic() < until:
                with self.link.errors("fetch"):
                    if self.link.drain(0):
                        continue
                self.link.wait_readable(min(WAIT_SLICE, until - time.monotonic()))
        finally:
            with self.link.errors("fetch"):
                if self.link.generation == generation:
                    for tag, _ in tags:
                        self.link.channel("work").basic_cancel(tag)
        with self.link.errors("fetch"):
            if self.link.generation != generation:
                return []
            by_tag = dict(tags)
            for message in pushed:
                queue = by_tag[message.delivery_info["consumer_tag"]]
                self.leases.spare(queue, message)
            return self.leases.take(queues, limit, lease)

    # -- settling --------------------------------------------------------------------------------
    def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Remove delivered messages; see :meth:`Broker.ack_many`.

        Raises:
            BrokerError: RabbitMQ cannot be reached.
        """
        flags = []
        with self.link.errors("ack"):
            for delivery in deliveries:
                held = self.leases.holding(delivery)
                if held is not None:
                    self.link.channel("work").basic_ack(held.delivery_tag)
                    del self.leases.held[delivery.tag]
                flags.append(held is not None)
            self._settled()
        return flags

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> list[bool]:
        """Push lease deadlines, renewing deliveries held for half the consumer timeout; see
        :meth:`Broker.extend`.

        Raises:
            BrokerError: RabbitMQ cannot be reached.
        """
        flags = []
        with self.link.errors("extend"):
            now = self.clock()
            renew_before = time.monotonic() - self.options.consumer_timeout / 2
            self.leases.give_back_spares(taken_before=renew_before, keep=list(self.leases.spares))
            for delivery in deliveries:
                held = self.leases.holding(delivery)
                if held is not None and held.since <= renew_before:
                    held = self._renew(delivery.tag, held)
                if held is not None:
                    held.deadline = now + lease
                flags.append(held is not None)
            self.link.tick()
        return flags

    def _renew(self, tag: str, held: Held) -> Held | None:
        """Swap a long-held delivery for a fresh one of a copy, before RabbitMQ's consumer
        timeout closes the channel: the copy goes through this instance's hold queue, which
        sends it back to its queue should this process die holding it."""
        hold = self.names.hold(held.queue)
        self.out.declare(held.queue)
        self.link.declare_queue(hold, self.names.hold_arguments(held.queue))
        wire = build(
            body_of(held.message),
            tag=tag,
            queue=held.queue,
            priority=priority_of(held.message),
            attempt=held.attempt,  # should it come back, that was one hand-out
        )
        self.link.publish([("", hold, wire)], self.out.deadline())
        work = self.link.channel("work")
        copy = work.basic_get(hold)
        work.basic_ack(held.delivery_tag)
        if copy is None:  # the copy expired into its queue already: another worker may run it
            del self.leases.held[tag]
            return None
        held.message, held.since = copy, time.monotonic()
        return held

    def requeue(
        self, delivery: Delivery, *, message: Message | None = None, eta: float | None = None
    ) -> bool:
        """Give a message back (in its place when ready now); see :meth:`Broker.requeue`.

        Raises:
            BrokerError: RabbitMQ cannot be reached, or did not take the new copy.
        """
        with self.link.errors("requeue"):
            held = self.leases.holding(delivery)
            if held is None:
                return False
            if message is None and (eta is None or eta <= self.clock()):
                self.leases.give_back(delivery.tag)
                self._settled()
                return True
            if message is not None:
                item = self.out.item(message, eta)
            else:
                assert eta is not None
                exchange, key = self.out.route(held.queue, eta)
                body = body_of(held.message)
                wire = build(
                    body,
                    tag=delivery.tag,
                    queue=held.queue,
                    priority=priority_of(held.message),
                    attempt=held.attempt,
                    eta=eta,
                )
                item = (exchange, key, wire)
            self.link.publish([item], self.out.deadline())
            self.link.channel("work").basic_ack(held.delivery_tag)
            del self.leases.held[delivery.tag]
            self._settled()
            return True

    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Move a message to the dead-letter queue; see :meth:`Broker.dead_letter`.

        Raises:
            BrokerError: RabbitMQ cannot be reached, or did not take the dead letter.
        """
        with self.link.errors("dead-letter"):
            held = self.leases.holding(delivery)
            if held is None:
                return False
            self._dead.bury(delivery.tag, held, reason, self.clock())
            self.link.channel("work").basic_ack(held.delivery_tag)
            del self.leases.held[delivery.tag]
            self._settled()
            return True

    # -- dead letters, recovery, inspection ------------------------------------------------------
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters; see :meth:`Broker.dead_letters` and ``DeadLetterStore``.

        Raises:
            BrokerError: RabbitMQ cannot be reached.
        """
        with self.link.errors("reading dead letters"):
            return self._dead.newest(limit)

    def requeue_dead_letters(self, tags: Sequence[str] | None, queue: str | None = None) -> int:
        """Put dead letters back; see :meth:`Broker.requeue_dead_letters`.

        Raises:
            BrokerError: RabbitMQ cannot be reached.
        """
        with self.link.errors("requeueing dead letters"):
            return self._dead.requeue(tags, queue)

    def delete_dead_letters(self, tags: Sequence[str] | None) -> int:
        """Delete dead letters; see :meth:`Broker.delete_dead_letters`.

        Raises:
            BrokerError: RabbitMQ cannot be reached.
        """
        with self.link.errors("deleting dead letters"):
            return self._dead.delete(tags)

    def recover(self) -> int:
        """Give back the messages of this process whose lease ran out (those of a dead
        process came back when RabbitMQ closed its connection); see :meth:`Broker.recover`.

        Raises:
            BrokerError: RabbitMQ cannot be reached.
        """
        with self.link.errors("recover"):
            return self.leases.release_expired()

    def queue_lengths(self, queues: Sequence[str]) -> dict[str, int]:
        """Ready, delayed, and leased by this process; see :meth:`Broker.queue_lengths`
        (RabbitMQ does not tell other connections' unacknowledged messages without its
        management plugin).

        Raises:
            BrokerError: RabbitMQ cannot be reached.
        """
        with self.link.errors("counting messages"):
            delayed = self._delays.counts()
            counts = {}
            for queue in queues:
                ready = self._ready(queue)
                held = sum(1 for h in self.leases.held.values() if h.queue == queue)
                spare = len(self.leases.spares.get(queue, ()))
                counts[queue] = ready + held + spare + delayed.get(queue, 0)
            return counts

    def _ready(self, queue: str) -> int:
        name = self.out.declare(queue)
        channel = self.link.channel("work")  # after this channel's rejects (see purge)
        _, count, _ = channel.queue_declare(
            name, durable=True, auto_delete=False, arguments=self.names.queue_arguments()
        )
        return int(count)

    def purge(self, queues: Sequence[str]) -> int:
        """Delete unleased messages, delayed ones too; see :meth:`Broker.purge`.

        Raises:
            BrokerError: RabbitMQ cannot be reached.
        """
        with self.link.errors("purge"):
            self.leases.release_expired()
            removed = 0
            work = self.link.channel("work")
            for queue in queues:
                for message in self.leases.spares.pop(queue, []):
                    work.basic_ack(message.delivery_info["delivery_tag"])
                    removed += 1
                # On the work channel, after its rejects: a channel's calls reach a queue in order.
                removed += int(work.queue_purge(self.out.declare(queue)) or 0)
            return removed + self._delays.purge(set(queues))

    # -- broadcasts ------------------------------------------------------------------------------
    def broadcast(self, payload: bytes, *, ttl: float = 86400.0) -> None:
        """Append a control message to the broadcast stream; see :meth:`Broker.broadcast`.

        Raises:
            PublishError: RabbitMQ refused it, or could not be reached in time.
        """
        self.out.send(lambda: self._broadcasts.append(payload, ttl), "control message not sent")

    def read_broadcasts(self, cursor: str | None) -> tuple[list[bytes], str]:
        """Control messages after ``cursor`` (a stream offset); see
        :meth:`Broker.read_broadcasts` and ``BroadcastLog``.

        Raises:
            BrokerError: RabbitMQ cannot be reached.
        """
        with self.link.errors("reading broadcasts"):
            return self._broadcasts.read(cursor)

    def _settled(self) -> None:
        if self._linger and not self.leases.held:
            self._linger = False
            self.link.close()

    def close(self) -> None:
        """Close the connection; the next call opens a new one. Deliveries still held keep
        it open until they are settled (closing it would give them back to their queues)."""
        with self.link.lock:
            if self.leases.held:
                self._linger = True
                return
            self._linger = False
            self.link.close()
