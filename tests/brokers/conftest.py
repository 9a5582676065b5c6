"""The ``broker`` fixture: one fresh broker per test, for every implementation in ``FACTORIES``.

Adding a broker to the conformance suite is one entry in ``FACTORIES``: a function that builds
it from the test's ``tmp_path`` and a :class:`FakeClock`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from celeriac.brokers.base import Broker
from celeriac.brokers.memory import MemoryBroker
from celeriac.brokers.sqlite import SqliteBroker
from support.clock import FakeClock
from support.redis_server import shared_server

BrokerFactory = Callable[[Path, FakeClock], Broker]


def _memory(tmp_path: Path, clock: FakeClock) -> Broker:
    return MemoryBroker(f"test-{uuid.uuid4().hex}", clock=clock)


def _sqlite(tmp_path: Path, clock: FakeClock) -> Broker:
    return SqliteBroker(str(tmp_path / "b.db"), clock=clock)


def _redis(tmp_path: Path, clock: FakeClock) -> Broker:
    from celeriac.brokers.redis import RedisBroker
    from celeriac.redis_connect import RedisOptions

    # One server for the session; a key prefix of its own keeps each test's keys apart.
    options = RedisOptions(global_keyprefix=f"test-{uuid.uuid4().hex}:")
    return RedisBroker(shared_server().url(), options, clock=clock)


FACTORIES: dict[str, BrokerFactory] = {"memory": _memory, "sqlite": _sqlite, "redis": _redis}


@pytest.fixture
def clock() -> FakeClock:
    """The clock the broker under test reads."""
    return FakeClock()


@pytest.fixture(params=sorted(FACTORIES))
def broker(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Broker]:
    """A fresh, empty broker of each implementation in ``FACTORIES`` (the test id is its name)."""
    built = FACTORIES[request.param](tmp_path, clock)
    yield built
    built.close()
