"""Fixtures for the beat tests: a fake clock, apps on in-memory stores that read it, and the
broker URLs that the end-to-end tests run real processes on."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celeriac
from celeriac.backends.memory import MemoryBackend
from celeriac.brokers.memory import MemoryBroker
from support.clock import FakeClock

# The brokers the end-to-end tests run on.
BROKERS = ["sqlite", "redis"]
REDIS_DB = 9  # flushed before each end-to-end test that uses it


@pytest.fixture
def clock() -> FakeClock:
    """The fake clock that the stores and schedulers of a test share."""
    return FakeClock(1_717_200_000.0)  # a round time: 2024-06-01 00:00 UTC


AppFactory = Callable[..., Celeriac]


@pytest.fixture
def make_app(clock: FakeClock) -> Iterator[AppFactory]:
    """``make_app(**settings)``: apps on one in-memory broker and backend (several beats and
    a worker, as separate processes would be), all on the fake clock."""
    name = f"beat-{uuid.uuid4().hex}"
    broker, backend = MemoryBroker(name, clock=clock), MemoryBackend(name, clock=clock)
    made: list[Celeriac] = []

    def make(**settings: Any) -> Celeriac:
        app = Celeriac("timed", broker=broker, backend=backend, **settings)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


@pytest.fixture(params=BROKERS)
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A broker URL for real processes: a fresh SQLite file, or a flushed Redis database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'celeriac.db'}"
    from support.redis_server import shared_server

    server = shared_server()
    server.client(REDIS_DB).flushdb()
    return server.url(REDIS_DB)
