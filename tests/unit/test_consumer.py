"""The worker's consumer thread, on the memory broker: after it hands messages to the main loop,
it fetches again only once the main loop says what it still wants.

A fetch right after a hand-off would run beside the main loop as it starts those messages: a
broker round trip holding the GIL (and one of the machine's cores) on the way from a publish to
its result.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence

import pytest

from celeriac.brokers.base import Delivery
from celeriac.brokers.memory import MemoryBroker
from celeriac.message import Message
from celeriac.worker.consumer import Consumer
from celeriac.worker.leases import LeaseKeeper

WAIT = 10.0  # seconds a test waits for the consumer thread, at most
QUIET = 0.3  # seconds in which a fetch that should not happen would have happened


class CountedBroker(MemoryBroker):
    """A memory broker that counts the fetches asked of it, and the limits they asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.limits: list[int] = []
        self.fetched = threading.Event()

    def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, consumer: str, timeout: float
    ) -> list[Delivery]:
        self.limits.append(limit)
        found = super().fetch(queues, limit, lease=lease, consumer=consumer, timeout=timeout)
        self.fetched.set()
        return found


def _publish(broker: MemoryBroker) -> None:
    broker.publish(Message(id=uuid.uuid4().hex, task="tests.noop", body=b"[[],{}]", queue="q"))


@pytest.fixture
def running() -> Iterator[tuple[CountedBroker, Consumer]]:
    broker = CountedBroker()
    keeper = LeaseKeeper(broker, 30.0)
    consumer = Consumer(broker, ["q"], lease=30.0, name="tester", keeper=keeper)
    consumer.start()
    try:
        yield broker, consumer
    finally:
        consumer.stop()
        consumer.close()


def _take(consumer: Consumer, count: int) -> list[Delivery]:
    deadline = time.monotonic() + WAIT
    taken: list[Delivery] = []
    while len(taken) < count and time.monotonic() < deadline:
        taken += consumer.take()
        time.sleep(0.01)
    return taken


def test_after_a_hand_off_it_waits_for_the_main_loop(
    running: tuple[CountedBroker, Consumer],
) -> None:
    broker, consumer = running
    _publish(broker)
    consumer.want(2)  # two free slots; one message waits
    assert len(_take(consumer, 1)) == 1
    fetches = len(broker.limits)
    time.sleep(QUIET)
    assert len(broker.limits) == fetches  # the other slot is not fetched for behind its back
    assert consumer.in_transit() == 0

    broker.fetched.clear()
    consumer.want(1)  # the main loop started the message and still has a slot
    assert broker.fetched.wait(WAIT)
    assert broker.limits[-1] == 1
    _publish(broker)
    assert len(_take(consumer, 1)) == 1


def test_an_empty_fetch_keeps_waiting_for_what_was_wanted(
    running: tuple[CountedBroker, Consumer],
) -> None:
    broker, consumer = running
    consumer.want(1)
    assert broker.fetched.wait(WAIT)  # it waits on an empty queue, fetch after fetch
    _publish(broker)
    assert len(_take(consumer, 1)) == 1
