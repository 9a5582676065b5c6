"""``rate_limit``: Celery's per-worker token bucket, in real worker subprocesses.

As Celery's guide writes it: ``@app.task(rate_limit='5/s')`` lets a worker start at most five
calls a second; ``app.control.rate_limit('tasks.add', '10/s')`` changes it while workers run.
Only lower bounds on time are asserted: a slow machine makes a test slower, never wrong.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from celeriac import Celeriac
from celeriac.exceptions import ConfigurationError
from support.processes import WorkerProcess


def test_a_rate_limit_spaces_the_calls_and_lets_other_tasks_pass(
    client: Celeriac, sqlite_url: str
) -> None:
    limited = [client.send_task("throttled.limited", (n,)) for n in range(15)]
    free = [client.send_task("throttled.free", (n,)) for n in range(3)]
    with WorkerProcess(sqlite_url, "-c", "2", app="throttled"):
        free_done = [r.get(timeout=60) for r in free]
        limited_started = sorted(r.get(timeout=60) for r in limited)
    # One token every 0.2 s, the first at once: 14 gaps of 0.2 s at least (2.8 s; 2.4 allows
    # for the clocks of different processes).
    assert limited_started[-1] - limited_started[0] >= 2.4
    # The free task was sent after every limited one, yet none waited for them.
    assert max(free_done) < limited_started[-1]


def test_control_rate_limit_changes_a_running_worker(client: Celeriac, sqlite_url: str) -> None:
    with WorkerProcess(sqlite_url, "-c", "2", app="throttled") as worker:
        paced = [client.send_task("throttled.paced", (n,)) for n in range(3)]
        paced[0].get(timeout=30)  # '1/m': the first at once, the next a minute later
        client.control.rate_limit("throttled.paced", "100/s")
        # Well before the minute the old limit would have made them wait.
        assert [r.get(timeout=30) for r in paced[1:]]
        worker.wait_for("rate limit of throttled.paced set to 100/s", 10)


def test_a_worker_not_named_in_destination_keeps_its_limit(
    client: Celeriac, sqlite_url: str
) -> None:
    with WorkerProcess(sqlite_url, "-c", "1", "-n", "one@%h", app="throttled") as worker:
        client.control.rate_limit("throttled.paced", "100/s", destination=["other@nowhere"])
        client.control.rate_limit(
            "throttled.free", "10/m", destination=[f"one@{socket.gethostname()}"]
        )
        worker.wait_for("rate limit of throttled.free set to 10/m", 10)
    assert "rate limit of throttled.paced" not in worker.output


def test_task_default_rate_limit_applies_to_tasks_without_their_own(
    client: Celeriac, sqlite_url: str
) -> None:
    free = [client.send_task("throttled.free", (n,)) for n in range(6)]
    with WorkerProcess(sqlite_url, "-c", "2", app="throttled", CELERIAC_TEST_DEFAULT_RATE="5/s"):
        started = sorted(r.get(timeout=60) for r in free)
    assert started[-1] - started[0] >= 0.8  # 5 gaps of 0.2 s (1.0 s)


def test_a_bad_rate_fails_at_decoration_and_in_control(tmp_path: Path) -> None:
    app = Celeriac("bad", broker=f"sqlite:///{tmp_path / 'b.db'}")
    with pytest.raises(ConfigurationError, match="bad rate limit '10/x'"):

        @app.task(rate_limit="10/x")
        def add(x: int, y: int) -> int:
            return x + y

    with pytest.raises(ConfigurationError, match="bad rate limit 'fast'"):
        app.control.rate_limit("bad.add", "fast")
    app.close()
