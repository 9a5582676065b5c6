"""A base Task class's handlers (Celery's ``before_start``, ``on_success``, ``on_failure``,
``on_retry``, ``after_return``) are called where the task runs, with Celery's arguments: in a
real prefork worker, and in ``apply()``."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celeriac, Task
from support.processes import WorkerProcess


def handler_lines(log: Path, task_id: str) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.replace(f" {task_id}", "") for line in lines if f" {task_id}" in line]


def test_a_real_worker_calls_the_base_class_handlers(sqlite_url: str, tmp_path: Path) -> None:
    log = tmp_path / "handlers"
    client = Celeriac("client", broker=sqlite_url)
    env = {"CELERIAC_TEST_HANDLER_LOG": str(log)}
    with WorkerProcess(sqlite_url, "-c", "1", app="based", **env) as worker:
        ok = client.send_task("based.add", (2, 3))
        failed = client.send_task("based.fail")
        retried = client.send_task("based.flaky")
        assert ok.get(timeout=20) == 5
        assert failed.get(timeout=20, propagate=False) is not None
        assert retried.get(timeout=20) == "ok"
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    client.close()
    assert handler_lines(log, ok.id) == [
        "before_start [2, 3]",
        "on_success 5",
        "after_return SUCCESS True",
    ]
    assert handler_lines(log, failed.id) == [
        "before_start []",
        "on_failure KeyError True",
        "after_return FAILURE False",
    ]
    assert handler_lines(log, retried.id) == [
        "before_start []",
        "on_retry ValueError",
        "after_return RETRY False",
        "before_start []",
        "on_success ok",
        "after_return SUCCESS True",
    ]


def test_apply_calls_the_handlers_and_one_that_raises_changes_no_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Celeriac("handlers", broker="memory://handlers")
    seen: list[tuple[str, Any]] = []

    class Base(Task[Any, Any]):
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            seen.append(("on_success", retval))
            raise RuntimeError("a handler with a bug")

        def after_return(self, status: str, retval: Any, *rest: Any) -> None:
            seen.append(("after_return", status))

    @app.task(base=Base)
    def add(x: int, y: int) -> int:
        return x + y

    assert add.apply((1, 2)).get() == 3
    assert seen == [("on_success", 3), ("after_return", "SUCCESS")]
    assert "handler on_success of task" in caplog.text


def test_a_task_without_a_base_class_has_no_handlers_to_call() -> None:
    app = Celeriac("plain", broker="memory://plain-handlers")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add.overridden_handlers == frozenset()
