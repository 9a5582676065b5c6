"""A client app in the test process, with the tasks of ``tests/apps/flows.py`` registered under
their names (so ``add.adelay`` type-checks its arguments), and a real ``celeriac -A flows
worker`` subprocess on the same broker: SQLite or a Redis of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from celeriac import Celeriac, Task
from support.processes import WorkerProcess


@dataclass
class Flows:
    """The client app and its copies of the worker's tasks (the bodies never run here)."""

    app: Celeriac
    url: str
    add: Task[[int, int], int]
    slow_add: Task[[int, int, float], int]
    fails: Task[..., Any]
    tsum: Task[[list[int]], int]


def client_app(url: str) -> Flows:
    """A client app on ``url`` with the worker's task names."""
    app = Celeriac("aio-client", broker=url)

    @app.task(name="flows.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="flows.slow_add")
    def slow_add(x: int, y: int, seconds: float) -> int:
        return x + y

    @app.task(name="flows.fails")
    def fails(*args: Any) -> Any:
        raise RuntimeError("runs on the worker")

    @app.task(name="flows.tsum")
    def tsum(numbers: list[int]) -> int:
        return sum(numbers)

    return Flows(app, url, add, slow_add, fails, tsum)


@pytest.fixture
def flows(sqlite_or_redis_url: str) -> Iterator[Flows]:
    """The client, with a worker of four threads running while the test does."""
    found = client_app(sqlite_or_redis_url)
    with WorkerProcess(sqlite_or_redis_url, "-c", "4", "-P", "threads", app="flows"):
        yield found
    found.app.close()
