"""Middleware sees every hook once per message, in order, on every pool; one that raises is
logged by name and loses nothing.

The middleware (``HookLog`` in tests/apps/hooked.py) appends each hook to a file, so the same
check reads hooks called in the test process (publish), the worker's main process (fetch,
skip, settle) and its pool (execute), whichever pool runs the task.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from apps.hooklog import Broken, HookLog
from celeriac import Celeriac, Reject, states
from support.processes import WorkerProcess
from support.workers import worker_running

PUBLISHED = ["before_publish", "after_publish"]
RUN = ["after_fetch", "before_execute"]
EXPECTED = {
    "add": [*PUBLISHED, *RUN, "after_execute:SUCCESS", "after_settle:ack"],
    "flaky": [
        *PUBLISHED,
        *RUN,
        "on_retry",
        "after_execute:RETRY",
        "after_settle:retry",
        *RUN,
        "after_execute:SUCCESS",
        "after_settle:ack",
    ],
    "fail": [*PUBLISHED, *RUN, "on_failure", "after_execute:FAILURE", "after_settle:ack"],
    "refuse": [*PUBLISHED, *RUN, "after_execute:FAILURE", "after_settle:dead_letter"],
    "revoked": [*PUBLISHED, "after_skip", "after_settle:ack"],
}


def hooks_by_task(log: Path) -> tuple[dict[str, list[str]], list[str]]:
    """The hooks seen for each task id, in order, and those of no task (start and stop)."""
    per_task: dict[str, list[str]] = {}
    others: list[str] = []
    for line in log.read_text().splitlines():
        hook, task_id, _pid = line.rsplit(" ", 2)
        if hook.startswith("signal:"):
            continue
        if task_id == "-":
            others.append(hook)
        else:
            per_task.setdefault(task_id, []).append(hook)
    return per_task, others


def send_every_kind(client: Celeriac, prefix: str) -> dict[str, str]:
    """One call of each kind in EXPECTED; returns the task id of each."""
    revoked = client.send_task(f"{prefix}.add", (0, 0))
    revoked.revoke()
    ids = {"revoked": revoked.id}
    for name, args in (("add", (2, 2)), ("flaky", ()), ("fail", ()), ("refuse", ())):
        ids[name] = client.send_task(f"{prefix}.{name}", args).id
    return ids


def wait_for_every_kind(client: Celeriac, ids: dict[str, str]) -> None:
    assert client.AsyncResult(ids["add"]).get(timeout=30) == 4
    assert client.AsyncResult(ids["flaky"]).get(timeout=30) == "second try"
    for name in ("fail", "refuse"):
        assert client.AsyncResult(ids[name]).get(timeout=30, propagate=False) is not None
        assert client.AsyncResult(ids[name]).state == states.FAILURE


def check_hooks(log: Path, ids: dict[str, str]) -> None:
    per_task, others = hooks_by_task(log)
    for name, task_id in ids.items():
        assert per_task[task_id] == EXPECTED[name], name
    others = [hook for hook in others if hook != "child_start"]  # prefork: before it is ready
    assert others[0] == "worker_start" and others[-1] == "worker_stop"
    assert others.count("worker_start") == others.count("worker_stop") == 1


def hooked_app(name: str, log: Path, **settings: object) -> Celeriac:
    app = Celeriac(name, broker=f"memory://{name}-{id(log)}", middleware=[HookLog(str(log))])

    @app.task(name=f"{name}.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name=f"{name}.flaky", bind=True, max_retries=1, default_retry_delay=0)
    def flaky(self) -> str:  # type: ignore[no-untyped-def]
        if self.request.retries == 0:
            raise self.retry(exc=ValueError("first try"))
        return "second try"

    @app.task(name=f"{name}.fail")
    def fail() -> None:
        raise KeyError("always")

    @app.task(name=f"{name}.refuse")
    def refuse() -> None:
        raise Reject("not for me")

    return app


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_a_middleware_sees_each_hook_once_per_message_in_order(pool: str, tmp_path: Path) -> None:
    log = tmp_path / "hooks"
    app = hooked_app("inproc", log)
    ids = send_every_kind(app, "inproc")
    with worker_running(app, concurrency=2, pool=pool):
        wait_for_every_kind(app, ids)
    check_hooks(log, ids)


def test_prefork_children_call_the_hooks_where_tasks_run(sqlite_url: str, tmp_path: Path) -> None:
    log = tmp_path / "hooks"
    client = Celeriac("client", broker=sqlite_url, middleware=[HookLog(str(log))])
    ids = send_every_kind(client, "hooked")
    env = {"CELERIAC_TEST_HOOK_LOG": str(log)}
    with WorkerProcess(sqlite_url, "-c", "2", "-P", "prefork", app="hooked", **env) as worker:
        wait_for_every_kind(client, ids)
        worker.signal(signal.SIGTERM)  # a clean stop: its last hooks run before it exits
        assert worker.wait(20) == 0
    client.close()
    check_hooks(log, ids)
    lines = log.read_text().splitlines()
    child_pids = {line.rsplit(" ", 1)[1] for line in lines if line.startswith("child_start")}
    ran_in = {line.rsplit(" ", 1)[1] for line in lines if line.startswith("before_execute")}
    assert len(child_pids) == 2 and ran_in <= child_pids
    # Celery's signals, sent by the built-in middleware in the children.
    assert sum(line.startswith("signal:worker_process_init") for line in lines) == 2
    assert any(line.startswith("signal:task_prerun:hooked.add:[2, 2] ") for line in lines)
    assert any(line.startswith(f"signal:task_postrun:SUCCESS {ids['add']}") for line in lines)
    # The middleware that raises everywhere was logged by name, and lost nothing.
    assert "middleware Broken raised in before_execute" in worker.output
    assert "middleware Broken raised in after_settle" in worker.output


def test_a_raising_middleware_is_logged_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = Celeriac("broken", broker="memory://broken-hooks", middleware=[Broken()])

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with worker_running(app, concurrency=2, pool="threads"):
        assert [add.delay(i, i).get(timeout=10) for i in range(5)] == [0, 2, 4, 6, 8]
    assert "middleware Broken raised in after_execute" in caplog.text


def test_middleware_given_by_setting_as_a_dotted_path(tmp_path: Path) -> None:
    app = Celeriac("dotted", broker="memory://dotted-hooks", middleware=["apps.hooklog:Broken"])
    names = [type(m).__name__ for m in app.middleware.middleware]
    assert names == ["CelerySignals", "TaskHandlers", "TaskEvents", "Broken"]
    app.conf.middleware = ["apps.hooklog.Broken", Broken]
    assert len(app.middleware.middleware) == 5
    app.conf.middleware = ["no_such_module.Thing"]
    with pytest.raises(Exception, match=r"cannot import middleware 'no_such_module\.Thing'"):
        _ = app.middleware
