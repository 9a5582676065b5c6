"""Shared fixtures: throw-away broker URLs and a client app for the test process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celeriac

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Celery projects, run only once renamed (test_celery_programs.py): one holds a test suite of its
# own, written against Celery's names.
collect_ignore = ["celery_programs"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A broker URL for a fresh SQLite file that only this test uses."""
    return f"sqlite:///{tmp_path / 'celeriac.db'}"


@pytest.fixture
def client(sqlite_url: str) -> Iterator[Celeriac]:
    """An app in the test process that sends to (and reads results from) ``sqlite_url``.

    It registers no tasks: tests send by name (``client.send_task("jobs.add", (2, 2))``), as a
    client that does not import the worker's code would.
    """
    app = Celeriac("client", broker=sqlite_url)
    yield app
    app.close()


@pytest.fixture(params=["sqlite", "redis"])
def sqlite_or_redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test twice: on a fresh SQLite file, and on a throw-away ``redis-server`` of its own
    (one it may stop and restart)."""
    from support.redis_server import RedisServer  # importable once tests/ is on the path

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'broker.db'}"
        return
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory).start()
    try:
        yield server.url()
    finally:
        server.close()
