"""``celeriac worker -P asyncio`` with ``--max-tasks-per-child``, ``--max-memory-per-child``,
``--autoscale`` and ``celeriac control pool_grow / pool_shrink``, through the real CLI on
SQLite and Redis. Only outcomes and the order of events are asserted, never durations."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from celeriac import Celeriac, group, states
from support.processes import count_runs, run_cli

from .conftest import async_worker
from .test_asyncio_pool import _marks

W = "sizes@test"


def _stats(url: str) -> Any:
    """What the worker answers to ``celeriac inspect stats`` (through the CLI)."""
    done = run_cli(url, "-A", "jobs", "inspect", "stats", "-d", W, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)[W]


def _control(url: str, *args: str) -> str:
    done = run_cli(url, "-A", "jobs", "control", *args, "-d", W)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _how_they_ran(aclient: Celeriac, log: Path, count: int, seconds: float) -> str:
    """Run ``count`` snoozes as one group: "together" when every one started before any
    ended, else "in turns"."""
    calls = group(aclient.signature("async_jobs.snooze", (str(log), seconds)) for _ in range(count))
    ids: list[str] = calls.apply_async().get(timeout=60)
    starts, ends = _marks(log)
    log.unlink()
    assert set(starts) == set(ends) == set(ids)
    return "together" if max(starts.values()) < min(ends.values()) else "in turns"


def test_max_tasks_per_child_replaces_the_child_every_three_tasks(
    aclient: Celeriac, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    args = ("-P", "asyncio", "--max-tasks-per-child", "3")
    with async_worker(sqlite_or_redis_url, *args) as worker:
        results = [aclient.send_task("async_jobs.counted", (str(runs), 0.05)) for _ in range(20)]
        pids = [r.get(timeout=60) for r in results]
        worker.wait_for("retires after 3 tasks", 10)
    assert all(r.state == states.SUCCESS for r in results)
    assert count_runs(runs) == {r.id: 1 for r in results}  # each ran once
    assert max(Counter(pids).values()) <= 3
    assert len(set(pids)) >= 7


def test_a_child_past_max_memory_per_child_is_replaced(
    aclient: Celeriac, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    args = ("-P", "asyncio", "-c", "2", "--max-memory-per-child", "1")  # KiB: always past it
    with async_worker(sqlite_or_redis_url, *args):
        results = [aclient.send_task("async_jobs.counted", (str(runs), 0.1)) for _ in range(8)]
        pids = [r.get(timeout=60) for r in results]
    assert count_runs(runs) == {r.id: 1 for r in results}
    assert len(set(pids)) >= 2


def test_control_pool_grow_and_shrink_change_the_slots_of_the_child(
    aclient: Celeriac, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    url, log = sqlite_or_redis_url, tmp_path / "marks"
    with async_worker(url, "-P", "asyncio", "-c", "1", "-n", W) as worker:
        child = worker.children()
        assert _how_they_ran(aclient, log, 3, 0.5) == "in turns"
        assert "pool will grow" in _control(url, "pool_grow", "3")
        assert _stats(url)["pool"]["max-concurrency"] == 4
        assert _how_they_ran(aclient, log, 4, 1.0) == "together"
        assert "pool will shrink" in _control(url, "pool_shrink", "3")
        assert _stats(url)["pool"]["max-concurrency"] == 1
        assert _how_they_ran(aclient, log, 2, 0.5) == "in turns"
        assert worker.children() == child  # slots, not processes


def test_autoscale_grows_the_slots_while_work_waits(
    aclient: Celeriac, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "marks"
    args = ("-P", "asyncio", "--autoscale", "6,1", "-n", W)
    with async_worker(sqlite_or_redis_url, *args) as worker:
        worker.wait_for("concurrency 1,", 1)
        assert _how_they_ran(aclient, log, 6, 3.0) == "together"
        worker.wait_for("pool grown to 6", 1)
        assert len(worker.children()) == 1
