"""Fixtures of the dashboard tests: an app on the test's broker and its dashboard."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac import Celeriac
from dashboard.helpers import Dashboard


@pytest.fixture
def board(sqlite_or_redis_url: str) -> Iterator[Celeriac]:
    """A client app on the test's broker (SQLite, then Redis), with board's beat entry."""
    app = Celeriac("board", broker=sqlite_or_redis_url)
    app.conf.beat_schedule = {
        "tick-every-hour": {"task": "board.add", "schedule": 3600.0, "args": (1, 1)}
    }
    yield app
    app.close()


@pytest.fixture
def dashboard(board: Celeriac) -> Dashboard:
    """The dashboard of ``board``, on loopback without credentials."""
    return Dashboard(board)
