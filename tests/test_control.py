"""``app.control`` and ``app.control.inspect()`` against real worker subprocesses, on SQLite
and Redis: Celery's names, Celery's reply shapes, destinations, and the silence of no worker.

Commands reach a worker within its command read (about every 0.2 s, busy or not); replies come
back through the result backend. Only outcomes are asserted, never how long they took.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celeriac, states
from celeriac.exceptions import TimeLimitExceeded
from support.processes import APPS, WorkerProcess
from support.waiting import wait_for

W1, W2 = "w1@test", "w2@test"


@pytest.fixture
def app(sqlite_or_redis_url: str) -> Iterator[Celeriac]:
    """A client of the worker's broker (and, by default, its result backend)."""
    client = Celeriac("client", broker=sqlite_or_redis_url)
    yield client
    client.close()


def _answer(app: Celeriac, method: str, *args: Any) -> Any:
    """What worker W1 answers to ``inspect().<method>()``."""
    replies = getattr(app.control.inspect(destination=[W1], timeout=5), method)(*args)
    assert replies is not None and set(replies) == {W1}, replies
    return replies[W1]


def test_inspect_answers_in_celery_shapes(app: Celeriac, sqlite_or_redis_url: str) -> None:
    # One process, and one more message held beside its task (reserved).
    args = ("-c", "1", "--prefetch-multiplier", "2", "-n", W1)
    with WorkerProcess(sqlite_or_redis_url, *args) as worker:
        running = app.send_task("jobs.sleep_for", (60,))
        waiting = app.send_task("jobs.add", (2, 3))
        assert wait_for(lambda: _answer(app, "active"), 20), worker.output
        (active,) = _answer(app, "active")
        assert active["id"] == running.id and active["name"] == "jobs.sleep_for"
        assert (active["args"], active["kwargs"], active["hostname"]) == ([60], {}, W1)
        assert active["worker_pid"] in worker.children()
        assert isinstance(active["time_start"], float) and active["acknowledged"] is False
        assert active["delivery_info"]["routing_key"] == "celeriac"
        assert wait_for(lambda: _answer(app, "reserved"), 20)
        assert [r["id"] for r in _answer(app, "reserved")] == [waiting.id]
        assert _answer(app, "scheduled") == []
        assert "jobs.add" in _answer(app, "registered")
        assert "jobs.hard_limited [time_limit=1]" in _answer(app, "registered", "time_limit")
        assert _answer(app, "ping") == {"ok": "pong"}
        assert [q["name"] for q in _answer(app, "active_queues")] == ["celeriac"]
        stats = _answer(app, "stats")
        assert stats["pid"] == worker.pid and stats["pool"]["max-concurrency"] == 1
        assert sorted(stats["pool"]["processes"]) == sorted(worker.children())
        assert "://" in stats["broker"]["url"] and isinstance(stats["rusage"]["utime"], float)

        # terminate kills the running task: the next one starts in its place.
        assert app.control.terminate(running.id, destination=[W1], reply=True) == [
            {W1: {"ok": f"tasks {running.id} flagged as revoked"}}
        ]
        assert waiting.get(timeout=20) == 5
        assert running.state == states.REVOKED
        assert running.id in _answer(app, "revoked")
        worker.wait_for(f"terminating task {running.id}", 10)
        assert _answer(app, "stats")["total"] == {"jobs.add": 1, "jobs.sleep_for": 1}


def test_control_commands_change_a_running_worker(app: Celeriac, sqlite_or_redis_url: str) -> None:
    with WorkerProcess(sqlite_or_redis_url, "-c", "1", "-n", W1) as worker:
        where: dict[str, Any] = {"destination": [W1], "reply": True, "timeout": 5}
        ok = {"ok": "new rate limit set successfully"}
        assert app.control.rate_limit("jobs.add", "100/s", **where) == [{W1: ok}]
        assert app.control.rate_limit("jobs.nope", "1/s", **where) == [
            {W1: {"error": "unknown task"}}
        ]
        limited = {"ok": "time limits set successfully"}
        assert app.control.time_limit("jobs.sleep_for", None, 1, **where) == [{W1: limited}]
        with pytest.raises(TimeLimitExceeded):
            app.send_task("jobs.sleep_for", (30,)).get(timeout=30)

        assert app.control.pool_grow(2, **where) == [{W1: {"ok": "pool will grow"}}]
        assert _answer(app, "stats")["pool"]["max-concurrency"] == 3
        assert wait_for(lambda: len(worker.children()) == 3, 10)
        assert app.control.pool_shrink(1, **where) == [{W1: {"ok": "pool will shrink"}}]
        assert _answer(app, "stats")["pool"]["max-concurrency"] == 2

        assert app.control.add_consumer("extra", **where) == [{W1: {"ok": "add consumer extra"}}]
        assert app.send_task("jobs.add", (1, 1), queue="extra").get(timeout=20) == 2
        assert [q["name"] for q in _answer(app, "active_queues")] == ["celeriac", "extra"]
        gone = {"ok": "no longer consuming from extra"}
        assert app.control.cancel_consumer("extra", **where) == [{W1: gone}]
        assert [q["name"] for q in _answer(app, "active_queues")] == ["celeriac"]
        last = app.control.cancel_consumer("celeriac", **where)
        assert last is not None and "error" in last[0][W1]

        assert app.control.broadcast("no_such_command", reply=True, limit=1, timeout=5) == [
            {W1: {"error": "unknown command 'no_such_command'"}}
        ]
        assert app.control.shutdown(**where) == [{W1: {"ok": "shutting down"}}]
        assert worker.wait(20) == 0


def test_destination_names_the_workers_that_act_and_answer(
    app: Celeriac, sqlite_or_redis_url: str
) -> None:
    with (
        WorkerProcess(sqlite_or_redis_url, "-c", "1", "-n", W1) as first,
        WorkerProcess(sqlite_or_redis_url, "-c", "1", "-n", W2) as second,
    ):
        everyone = app.control.ping(timeout=2)
        assert sorted(everyone, key=str) == [{W1: {"ok": "pong"}}, {W2: {"ok": "pong"}}]
        assert app.control.ping(destination=[W2], timeout=5) == [{W2: {"ok": "pong"}}]
        assert set(app.control.inspect(destination=W1, timeout=5).ping() or {}) == {W1}
        assert app.control.shutdown(destination=[W2], reply=True, timeout=5) == [
            {W2: {"ok": "shutting down"}}
        ]
        assert second.wait(20) == 0
        assert app.control.ping(timeout=1) == [{W1: {"ok": "pong"}}]
        assert first.process is not None and first.process.poll() is None


def test_a_ping_to_no_worker_returns_nothing(app: Celeriac) -> None:
    assert app.control.ping(timeout=0.3) == []
    assert app.control.inspect(timeout=0.3).active() is None
    assert app.control.inspect(destination=["nobody@nowhere"], timeout=0.3).stats() is None
    assert app.control.rate_limit("jobs.add", "1/s", reply=True, timeout=0.3) == []
    assert app.control.shutdown() is None  # no reply asked: nothing to wait for


def test_a_worker_started_later_does_not_act_on_old_commands(
    app: Celeriac, sqlite_or_redis_url: str
) -> None:
    app.control.shutdown()
    app.control.pool_grow(3)
    with WorkerProcess(sqlite_or_redis_url, "-c", "1", "-n", W1) as worker:
        assert _answer(app, "stats")["pool"]["max-concurrency"] == 1
        assert worker.process is not None and worker.process.poll() is None


def test_purge_empties_the_apps_queues(app: Celeriac) -> None:
    for n in range(3):
        app.send_task("jobs.add", (n, n))
    assert app.control.purge() == 3
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


def test_arguments_are_not_shown_when_the_worker_hides_them(
    tmp_path: Path, sqlite_url: str
) -> None:
    (tmp_path / "hidden_settings.py").write_text("dashboard_hide_args = True\n")
    path = os.pathsep.join([str(APPS), str(tmp_path)])
    worker = WorkerProcess(sqlite_url, "-c", "1", "-n", W1, PYTHONPATH=path)
    worker.command[3:3] = ["--config", "hidden_settings"]
    app = Celeriac("client", broker=sqlite_url)
    with worker:
        app.send_task("jobs.sleep_for", (60,), kwargs={})
        assert wait_for(lambda: _answer(app, "active"), 20), worker.output
        (active,) = _answer(app, "active")
        assert (active["name"], active["args"], active["kwargs"]) == ("jobs.sleep_for", "", "")
    app.close()
