"""Fixtures for the workflow tests: an app with a few tasks, on each broker, and its worker.

Every test that takes ``flow`` runs once per broker in ``BROKERS`` (add ``"redis"`` to it once
that broker lands: its factory is in ``APPS`` already). Workers are in-process: ``flow.run()``
drains the queues in the test's thread, follow-ups included, so no test sleeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celeriac, Task
from celeriac.testing import in_process_worker, use_memory
from celeriac.worker import Worker

BROKERS = ["memory", "sqlite"]  # each must have a factory in APPS


class Boom(Exception):
    """What the ``fail`` task raises."""


CALLS: list[tuple[str, Any]] = []  # what the logging tasks saw, in order (cleared per test)


def add(x: int, y: int) -> int:
    return x + y


def mul(x: int, y: int) -> int:
    return x * y


def tsum(numbers: list[int]) -> int:
    return sum(numbers)


def xsum(numbers: list[int]) -> int:
    return sum(numbers)


def identity(value: Any) -> Any:
    return value


def fail(*args: Any) -> None:
    raise Boom(f"failed with {args!r}")


def log_result(value: Any) -> Any:
    CALLS.append(("log_result", value))
    return value


def describe(value: Any) -> str:
    CALLS.append(("describe", value))
    return type(value).__name__


def on_error(task_id: str) -> str:
    CALLS.append(("on_error", task_id))
    return task_id


def on_error_full(request: Any, exc: BaseException, traceback: str | None) -> str:
    CALLS.append(("on_error_full", (request, exc, traceback)))
    return str(request.id)


def on_error_tagged(task_id: str, tag: str) -> str:
    CALLS.append(("on_error_tagged", (task_id, tag)))
    return tag


def spawn(task: Task[Any, Any], n: int) -> int:
    for i in range(n):
        task.app.tasks["flow.add"].delay(i, i)
    return n


class Flow:
    """An app with the tasks the tests use, the calls they log, and an in-process worker."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app
        self.calls = CALLS
        CALLS.clear()
        self.workers: dict[tuple[str, ...], Worker] = {}

        def task(fn: Callable[..., Any], **options: Any) -> Task[Any, Any]:
            register: Callable[[Callable[..., Any]], Task[Any, Any]] = app.task(
                name=f"flow.{fn.__name__}", **options
            )
            return register(fn)

        self.add = task(add)
        self.mul = task(mul)
        self.tsum = task(tsum)
        self.xsum = task(xsum)
        self.identity = task(identity)
        self.fail = task(fail)
        self.log_result = task(log_result)
        self.describe = task(describe)
        self.on_error = task(on_error)
        self.on_error_full = task(on_error_full)
        self.on_error_tagged = task(on_error_tagged)
        self.spawn = task(spawn, bind=True)

    def run(self, *queues: str) -> int:
        """Run everything ready on ``queues`` (the default queue when none), follow-ups too."""
        key = queues or (self.app.conf.task_default_queue,)
        if key not in self.workers:
            self.workers[key] = in_process_worker(self.app, queues=key)
        return self.workers[key].drain()

    def logged(self, name: str) -> list[Any]:
        """The logged values of calls of the task ``name``."""
        return [value for called, value in self.calls if called == name]

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()


def _memory_app(tmp_path: Path) -> Iterator[Celeriac]:
    app = Celeriac("flows")
    with use_memory(app):
        yield app


def _sqlite_app(tmp_path: Path) -> Iterator[Celeriac]:
    app = Celeriac("flows", broker=f"sqlite:///{tmp_path / 'flows.db'}")
    yield app
    app.close()


def _redis_app(tmp_path: Path) -> Iterator[Celeriac]:
    from support.redis_server import shared_server

    # One server for the session; a key prefix of its own keeps each test's keys apart.
    options = {"global_keyprefix": f"flows-{uuid.uuid4().hex}:"}
    app = Celeriac("flows", broker=shared_server().url(), broker_transport_options=options)
    yield app
    app.close()


APPS: dict[str, Callable[[Path], Iterator[Celeriac]]] = {
    "memory": _memory_app,
    "sqlite": _sqlite_app,
    "redis": _redis_app,
}


@pytest.fixture(params=BROKERS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Which broker this run of the test uses."""
    return str(request.param)


@pytest.fixture
def flow(broker_kind: str, tmp_path: Path) -> Iterator[Flow]:
    """The tasks on a fresh app on this run's broker, and a worker for them."""
    for app in APPS[broker_kind](tmp_path):
        made = Flow(app)
        yield made
        made.close()
