"""What the AMQP broker does beyond the conformance suite, on the machine's RabbitMQ, in real
time: the delay chain's timers, the heartbeat of a connection that only renews leases, the swap
of a long-held delivery (and its way back if its holder dies), several brokers sharing a queue,
a late reader of broadcasts, and spares given back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.base import Delivery
from celeriac.message import Message
from support.rabbitmq import delete_names, disposable_broker, namespace, require_rabbitmq

Brokers = Callable[..., AmqpBroker]


@pytest.fixture
def brokers() -> Iterator[Brokers]:
    """Builds brokers that share one namespace (as the processes of one app do); all of its
    names are deleted afterwards."""
    require_rabbitmq()
    prefix = namespace()
    built: list[AmqpBroker] = []

    def build(**options: object) -> AmqpBroker:
        broker = disposable_broker(**{"namespace": prefix, **options})
        built.append(broker)
        return broker

    yield build
    for broker in built:
        delete_names(broker)


def _message(queue: str = "q", eta: float | None = None) -> Message:
    return Message(id=uuid.uuid4().hex, task="t", body=b"[[],{}]", queue=queue, eta=eta)


def _wait_fetch(
    broker: AmqpBroker, queues: tuple[str, ...] = ("q",), timeout: float = 10
) -> list[Delivery]:
    return broker.fetch(list(queues), 10, lease=30, consumer="t", timeout=timeout)


def test_a_countdown_waits_in_rabbitmq_until_it_is_due(brokers: Brokers) -> None:
    broker = brokers()
    sent = time.time()
    broker.publish_many([_message(eta=sent + 1.2), _message(eta=sent + 0.3)])
    assert broker.queue_lengths(["q"]) == {"q": 2}  # both waiting in the chain
    first = _wait_fetch(broker)
    second = _wait_fetch(broker)
    assert len(first) == 1 and len(second) == 1
    assert time.time() >= sent + 1.2  # never early: delays are rounded up
    assert broker.ack_many(first + second) == [True, True]
    assert broker.queue_lengths(["q"]) == {"q": 0}


def test_a_connection_that_only_renews_leases_stays_alive(brokers: Brokers) -> None:
    broker = brokers(heartbeat=1.0)
    broker.publish(_message())
    (delivery,) = _wait_fetch(broker)
    for _ in range(12):  # 3 s, three heartbeat intervals, reading nothing but through extend
        time.sleep(0.25)
        assert broker.extend([delivery], 30) == [True]
    assert broker.ack(delivery) is True


def test_a_long_held_delivery_is_swapped_and_comes_back_if_its_holder_dies(
    brokers: Brokers,
) -> None:
    holder, other = brokers(consumer_timeout=1.0), brokers()
    message = _message()
    holder.publish(message)
    (delivery,) = _wait_fetch(holder)
    time.sleep(0.6)
    assert holder.extend([delivery], 30) == [True]  # held past half the timeout: swapped
    assert other.fetch(["q"], 10, lease=30, consumer="o", timeout=0.5) == []
    holder.link.reset()  # the holder's connection dies (as when its process is killed)
    (back,) = _wait_fetch(other)
    assert (back.tag, back.body) == (delivery.tag, message.encode())
    assert back.attempt >= 2
    assert other.ack(back) is True
    assert holder.ack(delivery) is False


def test_two_brokers_share_a_queue_without_sharing_a_message(brokers: Brokers) -> None:
    one, two = brokers(), brokers()
    messages = [_message() for _ in range(50)]
    one.publish_many(messages)
    first = one.fetch(["q"], 30, lease=30, consumer="1", timeout=0)
    second = two.fetch(["q"], 30, lease=30, consumer="2", timeout=0)
    assert len(first) == 30 and len(second) == 20
    assert {d.body for d in first + second} == {m.encode() for m in messages}
    assert one.ack_many(second) == [False] * 20  # not its leases
    assert two.ack_many(second) == [True] * 20 and one.ack_many(first) == [True] * 30


def test_a_late_reader_reads_the_broadcasts_still_kept(brokers: Brokers) -> None:
    sender = brokers()
    sender.broadcast(b"revoke 1")
    sender.broadcast(b"gone", ttl=0.2)
    time.sleep(0.3)
    late = brokers()
    kept, cursor = late.read_broadcasts(None)
    assert kept == [b"revoke 1"]
    sender.broadcast(b"revoke 2")
    deadline = time.monotonic() + 5
    fresh: list[bytes] = []
    while not fresh and time.monotonic() < deadline:
        fresh, cursor = late.read_broadcasts(cursor)
    assert fresh == [b"revoke 2"]


def test_publish_once_holds_across_brokers(brokers: Brokers) -> None:
    one, two = brokers(), brokers()
    assert one.publish_once(_message(), "chord:1", ttl=60) is True
    assert two.publish_once(_message(), "chord:1", ttl=60) is False
    assert one.publish_once(_message(), "chord:1", ttl=0.2) is True  # another ttl, another key
    assert two.queue_lengths(["q"]) == {"q": 2}


def test_spares_go_back_when_their_queue_is_no_longer_fetched(brokers: Brokers) -> None:
    broker, other = brokers(), brokers()
    broker.publish_many([_message("a"), _message("b")])
    (taken,) = broker.fetch(["a", "b"], 1, lease=30, consumer="t", timeout=0)
    assert taken.queue == "a"
    assert other.fetch(["b"], 10, lease=30, consumer="o", timeout=0) == []  # b's head is a spare
    assert broker.fetch(["a"], 10, lease=30, consumer="t", timeout=0) == []
    (b_head,) = other.fetch(["b"], 10, lease=30, consumer="o", timeout=0)
    assert b_head.queue == "b"


def test_quorum_queues_count_deliveries(brokers: Brokers) -> None:
    holder, other = brokers(queue_type="quorum"), brokers(queue_type="quorum")
    message = _message()
    holder.publish(message)
    (first,) = _wait_fetch(holder)
    holder.link.reset()  # its holder dies: RabbitMQ counts the delivery
    (second,) = _wait_fetch(other)
    assert (second.tag, second.attempt) == (first.tag, 2)
    assert other.dead_letter(second, "gave up") is True
    (letter,) = other.dead_letters()
    assert (letter.tag, letter.reason, letter.body) == (first.tag, "gave up", message.encode())
    assert other.requeue_dead_letters(None) == 1
    (third,) = _wait_fetch(other)
    assert third.attempt == 1 and other.ack(third) is True
