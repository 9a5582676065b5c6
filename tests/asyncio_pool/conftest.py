"""A client app in the test process and real ``celeriac -A async_jobs worker`` subprocesses
(``tests/asyncio_pool/apps/async_jobs.py``) on the same broker: SQLite or a Redis of the
test's own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celeriac
from support.processes import APPS, WorkerProcess

ASYNC_APPS = Path(__file__).resolve().parent / "apps"


def async_worker(url: str, *args: str, **env: str) -> WorkerProcess:
    """``celeriac -A async_jobs worker -l info <args>`` on ``url`` (not started)."""
    path = os.pathsep.join([str(ASYNC_APPS), str(APPS)])
    return WorkerProcess(url, *args, app="async_jobs", PYTHONPATH=path, **env)


@pytest.fixture
def aclient(sqlite_or_redis_url: str) -> Iterator[Celeriac]:
    """A client on the test's broker; it sends by name, as a client without the tasks would."""
    app = Celeriac("client", broker=sqlite_or_redis_url)
    yield app
    app.close()
