"""Task events and history from real ``celeriac worker`` subprocesses (issue 11): every kind of
event is found through ``history_tasks``/``history_task``, ``app.events.Receiver`` and the
``celeriac events`` CLI, on SQLite and on Redis. The backend contract itself is
tests/backends/test_history.py."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celeriac
from celeriac.history import TaskEntry, TaskQuery
from support.processes import APPS, CELERIAC, WorkerProcess, environment, run_cli
from support.waiting import wait_for

FINAL = ("SUCCESS", "FAILURE", "REVOKED", "REJECTED")


@pytest.fixture
def client(sqlite_or_redis_url: str) -> Iterator[Celeriac]:
    app = Celeriac("client", broker=sqlite_or_redis_url, task_send_sent_event=True)
    yield app
    app.close()


def settled(app: Celeriac, task_id: str, state: str, timeout: float = 30) -> TaskEntry:
    """The task's entry once it is in ``state`` (events reach the backend a turn after)."""
    found: list[TaskEntry] = []

    def check() -> bool:
        entry = app.backend.history_task(task_id)
        found[:] = [entry] if entry is not None else []
        return entry is not None and entry.state == state

    assert wait_for(check, timeout), f"{task_id} never got to {state}: {found}"
    return found[0]


def kinds(entry: TaskEntry) -> list[str]:
    return [e.type for e in entry.events]


def test_a_worker_records_each_task_s_history(client: Celeriac, sqlite_or_redis_url: str) -> None:
    late = client.send_task("monitored.add", (1, 1), countdown=1)
    client.control.revoke(late.id)
    with WorkerProcess(sqlite_or_redis_url, "-c", "2", app="monitored") as worker:
        added = client.send_task("monitored.add", (2, 3))
        failed = client.send_task("monitored.boom", ("gone",))
        retried = client.send_task("monitored.flaky")
        progressed = client.send_task("monitored.progress", (3,))
        assert added.get(timeout=30) == 5
        assert retried.get(timeout=30) == "third time lucky"
        assert progressed.get(timeout=30) == 3
        with pytest.raises(KeyError):
            failed.get(timeout=30)

        entry = settled(client, added.id, "SUCCESS")
        assert (entry.name, entry.args, entry.kwargs, entry.result) == (
            "monitored.add",
            "[2,3]",
            "{}",
            "5",
        )
        assert entry.worker.startswith("celeriac@") and entry.runtime is not None
        assert kinds(entry) == ["task-sent", "task-received", "task-started", "task-succeeded"]
        assert entry.sent is not None and entry.received is not None and entry.finished is not None

        entry = settled(client, failed.id, "FAILURE")
        assert entry.exception == "KeyError: gone"
        assert "Traceback" in entry.traceback and "raise KeyError(word)" in entry.traceback

        entry = settled(client, retried.id, "SUCCESS")
        assert kinds(entry)[1:] == [
            "task-received",
            "task-started",
            "task-retried",
            "task-received",
            "task-started",
            "task-succeeded",
        ]
        assert entry.retries == 1 and "Retry" in entry.exception

        entry = settled(client, progressed.id, "SUCCESS")
        assert kinds(entry).count("task-progress") == 3
        assert entry.progress == {"done": 3, "of": 3}

        assert settled(client, late.id, "REVOKED").name == "monitored.add"

        # A heartbeat every 2 s: the one after the tasks counts them.
        assert wait_for(lambda: [w.processed for w in client.backend.workers()] >= [6], 10)
        (host,) = client.backend.workers()
        assert (host.online, host.pool, host.concurrency, host.queues) == (
            True,
            "prefork",
            2,
            ("celeriac",),
        )
        worker.signal(signal.SIGTERM)  # a warm shutdown says goodbye
        assert worker.wait(30) == 0
    assert [w.online for w in client.backend.workers()] == [False]  # it said goodbye

    failures = client.backend.history_tasks(TaskQuery(state="FAILURE"))
    assert [t.task_id for t in failures.tasks] == [failed.id] and failures.total == 1
    assert [t.task_id for t in client.backend.history_tasks(TaskQuery(text="[2,3]")).tasks] == [
        added.id
    ]
    assert client.backend.history_counts()["SUCCESS"]["monitored.add"] == 1
    assert "task events" not in worker.output  # nothing failed to be written


def test_the_receiver_and_the_cli_stream_events_live(
    client: Celeriac, sqlite_or_redis_url: str
) -> None:
    caught: list[dict[str, Any]] = []
    receiver = client.events.Receiver(handlers={"*": caught.append})
    receiver.itercapture(limit=0)  # nothing: but it starts "from now" here
    _, receiver.cursor = client.backend.read_events(None)
    cli = subprocess.Popen(
        [CELERIAC, "-A", "monitored", "events", "--json", "--limit", "8", "--timeout", "60"],
        env=environment(sqlite_or_redis_url),
        cwd=str(APPS),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        thread = threading.Thread(target=receiver.capture, kwargs={"limit": 8, "timeout": 60})
        thread.start()
        with WorkerProcess(sqlite_or_redis_url, "-c", "1", app="monitored"):
            wait_for(lambda: False, 1.0)  # the CLI reads "from now": let it start first
            ok = client.send_task("monitored.add", (20, 22))
            bad = client.send_task("monitored.boom", ("x",))
            assert ok.get(timeout=30) == 42
            thread.join(60)
        out, err = cli.communicate(timeout=60)
    finally:
        cli.kill()
    want = {(ok.id, "task-succeeded"), (ok.id, "task-received"), (bad.id, "task-failed")}
    assert want <= {(e["uuid"], e["type"]) for e in caught}
    printed = [json.loads(line) for line in out.splitlines()]
    assert want <= {(e["uuid"], e["type"]) for e in printed}, err
    assert next(e for e in printed if e["type"] == "task-succeeded")["result"] == "42"


def test_the_cli_prints_one_readable_line_per_event(sqlite_url: str) -> None:
    app = Celeriac("client", broker=sqlite_url, task_send_sent_event=True)
    cli = subprocess.Popen(
        [CELERIAC, "-A", "monitored", "events", "--limit", "4", "--timeout", "60"],
        env=environment(sqlite_url),
        cwd=str(APPS),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        with WorkerProcess(sqlite_url, "-c", "1", app="monitored"):
            wait_for(lambda: False, 1.0)
            result = app.send_task("monitored.add", (2, 2))
            assert result.get(timeout=30) == 4
            settled(app, result.id, "SUCCESS")  # events are written a turn after the result
        out, _ = cli.communicate(timeout=60)
    finally:
        cli.kill()
        app.close()
    lines = out.splitlines()
    assert [line.split()[1] for line in lines] == [
        "task-sent",
        "task-received",
        "task-started",
        "task-succeeded",
    ]
    assert f"task-received   {result.id} @celeriac@" in lines[1]
    assert "monitored.add args=[2,2] kwargs={}" in lines[1]
    assert lines[3].split()[-3:-1] == ["4", "in"]


def test_history_can_be_turned_off_and_args_hidden(sqlite_url: str) -> None:
    app = Celeriac("client", broker=sqlite_url)
    try:
        with WorkerProcess(sqlite_url, "-c", "1", app="monitored", CELERIAC_TEST_HIDE_ARGS="1"):
            hidden = app.send_task("monitored.add", (7, 8))
            assert hidden.get(timeout=30) == 15
            entry = settled(app, hidden.id, "SUCCESS")
            assert (entry.args, entry.kwargs, entry.result) == ("", "", "15")
        with WorkerProcess(sqlite_url, "-c", "1", app="monitored", CELERIAC_TEST_HISTORY="0"):
            quiet = app.send_task("monitored.add", (1, 2))
            assert quiet.get(timeout=30) == 3
            wait_for(lambda: False, 1.0)  # what it would have written, it would have by now
        assert app.backend.history_task(quiet.id) is None
    finally:
        app.close()


def test_the_events_command_needs_a_reachable_backend() -> None:
    done = run_cli("redis://127.0.0.1:1/0", "-A", "monitored", "events", "--timeout", "1")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "redis://127.0.0.1:1/0" in done.stderr
