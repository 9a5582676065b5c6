"""The ``backend`` fixture: one fresh backend per test, for every implementation in ``FACTORIES``.

Adding a backend to the conformance suite is one entry in ``FACTORIES``: a function that builds
it from the test's ``tmp_path`` and a :class:`FakeClock` (the ``clock`` fixture).
"""

from __future__ import annotations

from pathlib import Path

from celeriac.backends.base import ResultBackend
from celeriac.backends.memory import MemoryBackend
from celeriac.backends.sqlite import SqliteBackend
from support.clock import FakeClock
from support.stores import (
    Factory,
    redis_test_options,
    redis_test_url,
    store_fixtures,
    unique_name,
)


def _memory(tmp_path: Path, clock: FakeClock) -> ResultBackend:
    return MemoryBackend(unique_name(), clock=clock)


def _sqlite(tmp_path: Path, clock: FakeClock) -> ResultBackend:
    return SqliteBackend(str(tmp_path / "r.db"), clock=clock)


def _redis(tmp_path: Path, clock: FakeClock) -> ResultBackend:
    from celeriac.backends.redis import RedisBackend

    return RedisBackend(redis_test_url(), redis_test_options(), clock=clock)


FACTORIES: dict[str, Factory[ResultBackend]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
}

clock, backend = store_fixtures("backend", FACTORIES)
