"""Fixtures for the Redis tests: a private ``redis-server`` per test, and a client app on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celeriac
from support.redis_server import RedisServer


def _server(directory: Path, *, appendonly: bool = False) -> RedisServer:
    directory.mkdir(parents=True, exist_ok=True)
    return RedisServer(directory, appendonly=appendonly).start()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh ``redis-server`` that only this test uses (no persistence)."""
    server = _server(tmp_path / "redis")
    yield server
    server.close()


@pytest.fixture
def aof_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh ``redis-server`` with ``appendonly yes``, for kill-and-restart tests."""
    server = _server(tmp_path / "redis-aof", appendonly=True)
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of this test's server."""
    return redis_server.url()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Celeriac]:
    """An app in the test process that sends to (and reads results from) ``redis_url``."""
    app = Celeriac("client", broker=redis_url)
    yield app
    app.close()
