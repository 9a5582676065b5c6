"""The ``backend`` fixture: one fresh backend per test, for every implementation in ``FACTORIES``.

Adding a backend to the conformance suite is one entry in ``FACTORIES``: a function that builds
it from the test's ``tmp_path`` and a :class:`FakeClock`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from celeriac.backends.base import ResultBackend
from celeriac.backends.memory import MemoryBackend
from celeriac.backends.sqlite import SqliteBackend
from support.clock import FakeClock
from support.redis_server import shared_server

BackendFactory = Callable[[Path, FakeClock], ResultBackend]


def _memory(tmp_path: Path, clock: FakeClock) -> ResultBackend:
    return MemoryBackend(f"test-{uuid.uuid4().hex}", clock=clock)


def _sqlite(tmp_path: Path, clock: FakeClock) -> ResultBackend:
    return SqliteBackend(str(tmp_path / "r.db"), clock=clock)


def _redis(tmp_path: Path, clock: FakeClock) -> ResultBackend:
    from celeriac.backends.redis import RedisBackend
    from celeriac.redis_connect import RedisOptions

    # One server for the session; a key prefix of its own keeps each test's keys apart.
    options = RedisOptions(global_keyprefix=f"test-{uuid.uuid4().hex}:")
    return RedisBackend(shared_server().url(), options, clock=clock)


FACTORIES: dict[str, BackendFactory] = {"memory": _memory, "sqlite": _sqlite, "redis": _redis}


@pytest.fixture
def clock() -> FakeClock:
    """The clock the backend under test reads."""
    return FakeClock()


@pytest.fixture(params=sorted(FACTORIES))
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[ResultBackend]:
    """A fresh, empty backend of each implementation in ``FACTORIES`` (the test id is its name)."""
    built = FACTORIES[request.param](tmp_path, clock)
    yield built
    built.close()
