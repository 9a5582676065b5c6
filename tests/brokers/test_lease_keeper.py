"""The worker's lease keeper against every broker: a message settled while its lease was being
renewed is not reported lost.

The keeper's thread extends every held lease every ``lease / 3`` seconds. The recorder acks a
batch and only then stops holding it, so an extension can reach the broker just after the ack
and be refused. Before ``LeaseKeeper.settling``, that refusal logged "lease of message ... lost:
another worker may run it" for a message that had just been settled here, on a worker alone
draining a queue.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence

import pytest

from celeriac.brokers.base import Broker, Delivery
from celeriac.message import Message
from celeriac.worker.leases import LeaseKeeper

LEASE = 0.3  # seconds: the keeper extends every 0.1 s
WAIT = 10.0  # seconds a test waits for the keeper's thread, at most


class CountedBroker:
    """``broker``'s extend, counted: how many times the keeper asked (the broker is real)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.extensions = 0

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> list[bool]:
        self.extensions += 1
        return self.broker.extend(deliveries, lease)


def _held_message(broker: Broker) -> Delivery:
    """A message published and fetched under a long lease (the keeper keeps it anyway)."""
    broker.publish(Message(id=uuid.uuid4().hex, task="tests.noop", body=b"[[],{}]", queue="q"))
    (delivery,) = broker.fetch(["q"], 1, lease=60.0, consumer="tester", timeout=0)
    return delivery


def _lost_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]


@contextlib.contextmanager
def _keeping(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> Iterator[tuple[Delivery, LeaseKeeper, CountedBroker]]:
    """A held message, and a running keeper that renews its lease through ``CountedBroker``
    (its warnings captured)."""
    caplog.set_level(logging.WARNING, logger="celeriac.worker")
    delivery = _held_message(broker)
    counted = CountedBroker(broker)
    keeper = LeaseKeeper(broker, LEASE)
    keeper.broker = counted  # type: ignore[assignment]  # the same calls, counted
    keeper.hold([delivery], time.monotonic())
    keeper.start()
    try:
        yield delivery, keeper, counted
    finally:
        keeper.stop()


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_message_acked_while_settling_is_not_reported_lost(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    with _keeping(broker, caplog) as (delivery, keeper, counted):
        keeper.settling([delivery])
        assert broker.ack_many([delivery]) == [True]
        asked = counted.extensions
        _wait_until(lambda: counted.extensions >= asked + 2)
        assert counted.extensions >= asked + 2, "the keeper never extended the settled lease"
        assert _lost_lines(caplog) == []
        keeper.release([delivery])


def test_a_message_gone_from_under_a_held_lease_is_reported_lost(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """The other side: a lease refused while nothing here settles it is still news."""
    with _keeping(broker, caplog) as (delivery, keeper, _):
        assert broker.ack_many([delivery]) == [True]  # as another holder's settle would
        _wait_until(lambda: bool(_lost_lines(caplog)))
        assert len(_lost_lines(caplog)) == 1
        assert keeper.confirm([delivery]) == [False]


def test_a_settle_that_failed_leaves_the_lease_held_and_watched(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """``unsettled``: the batch failed, so a refusal from then on is news again."""
    with _keeping(broker, caplog) as (delivery, keeper, _):
        keeper.settling([delivery])
        keeper.unsettled([delivery])
        assert broker.ack_many([delivery]) == [True]
        _wait_until(lambda: bool(_lost_lines(caplog)))
        assert len(_lost_lines(caplog)) == 1
