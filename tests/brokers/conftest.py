"""The ``broker`` fixture: one fresh broker per test, for every implementation in ``FACTORIES``.

Adding a broker to the conformance suite is one entry in ``FACTORIES``: a function that builds
it from the test's ``tmp_path`` and a :class:`FakeClock` (the ``clock`` fixture).
"""

from __future__ import annotations

from pathlib import Path

from celeriac.brokers.base import Broker
from celeriac.brokers.memory import MemoryBroker
from celeriac.brokers.sqlite import SqliteBroker
from support.clock import FakeClock
from support.stores import (
    Factory,
    redis_test_options,
    redis_test_url,
    store_fixtures,
    unique_name,
)


def _memory(tmp_path: Path, clock: FakeClock) -> Broker:
    return MemoryBroker(unique_name(), clock=clock)


def _sqlite(tmp_path: Path, clock: FakeClock) -> Broker:
    return SqliteBroker(str(tmp_path / "b.db"), clock=clock)


def _redis(tmp_path: Path, clock: FakeClock) -> Broker:
    from celeriac.brokers.redis import RedisBroker

    return RedisBroker(redis_test_url(), redis_test_options(), clock=clock)


def _amqp(tmp_path: Path, clock: FakeClock) -> Broker:
    from support.rabbitmq import disposable_broker

    return disposable_broker(clock)


FACTORIES: dict[str, Factory[Broker]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "amqp": _amqp,
}

clock, broker = store_fixtures("broker", FACTORIES)
