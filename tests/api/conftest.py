"""Fixtures for the public-API tests: the same app on the memory and the SQLite broker.

Every test that takes ``app`` (or ``clocked_app``) runs twice, once per broker, so one
behaviour is checked on both. Workers are in-process: ``worker.drain()`` runs what is ready
and returns, so no test sleeps or starts a process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celeriac
from celeriac.backends.base import ResultBackend
from celeriac.backends.memory import MemoryBackend
from celeriac.backends.sqlite import SqliteBackend
from celeriac.brokers.base import Broker
from celeriac.brokers.memory import MemoryBroker
from celeriac.brokers.sqlite import SqliteBroker
from celeriac.testing import in_process_worker, use_memory
from celeriac.worker import Worker
from support.clock import FakeClock

BROKERS = ["memory", "sqlite"]


@pytest.fixture(params=BROKERS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Which broker this run of the test uses."""
    return str(request.param)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> str:
    """A fresh SQLite file for this test."""
    return f"{tmp_path}/t.db"


@pytest.fixture
def app(broker_kind: str, sqlite_path: str) -> Iterator[Celeriac]:
    """A fresh app on the memory broker (through ``use_memory``) or a SQLite file."""
    if broker_kind == "memory":
        memory_app = Celeriac("test")
        with use_memory(memory_app):
            yield memory_app
        return
    sqlite_app = Celeriac("test", broker=f"sqlite:///{sqlite_path}")
    yield sqlite_app
    sqlite_app.close()


@pytest.fixture
def worker(app: Celeriac) -> Worker:
    """An in-process worker for ``app`` on the default queue."""
    return in_process_worker(app)


@pytest.fixture
def clock() -> FakeClock:
    """A clock that tests move by hand."""
    return FakeClock(time.time())  # the real time, for stores that also read it


@pytest.fixture
def stores(broker_kind: str, sqlite_path: str, clock: FakeClock) -> tuple[Broker, ResultBackend]:
    """A broker and backend of this run's kind that read time from ``clock``."""
    if broker_kind == "memory":
        return MemoryBroker("clocked", clock=clock), MemoryBackend("clocked", clock=clock)
    return SqliteBroker(sqlite_path, clock=clock), SqliteBackend(sqlite_path, clock=clock)


@pytest.fixture
def clocked_app(stores: tuple[Broker, ResultBackend]) -> Iterator[Celeriac]:
    """An app whose broker and backend run on the fake ``clock``."""
    broker, backend = stores
    clocked = Celeriac("clocked", broker=broker, backend=backend)
    yield clocked
    clocked.close()


@pytest.fixture
def clocked_worker(clocked_app: Celeriac) -> Worker:
    """An in-process worker for ``clocked_app``."""
    return in_process_worker(clocked_app)


AppFactory = Callable[..., Celeriac]


@pytest.fixture
def make_app(
    stores: tuple[Broker, ResultBackend],
) -> Iterator[AppFactory]:
    """Build more apps on the same broker and backend as each other (a client and a worker
    with different settings, say): ``make_app(**settings)``."""
    made: list[Celeriac] = []
    broker, backend = stores

    def make(**settings: Any) -> Celeriac:
        new = Celeriac("peer", broker=broker, backend=backend, **settings)
        made.append(new)
        return new

    yield make
    for each in made:
        each.close()
