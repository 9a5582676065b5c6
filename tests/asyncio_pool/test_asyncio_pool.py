"""``celeriac worker -P asyncio``: ``async def`` tasks on an event loop, through the real CLI on
SQLite and Redis: concurrency, retries, time limits, terminate, a killed worker, plain functions
in its threads, async tasks on the other pools, and the blocking-coroutine warning."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from celeriac import (
    Celeriac,
    TaskRevokedError,
    TimeLimitExceeded,
    WorkerLostError,
    chain,
    group,
    states,
    xmap,
)
from support.processes import count_runs
from support.waiting import wait_for

from .conftest import async_worker

LEASE = "2"


def _marks(path: Path) -> tuple[dict[str, float], dict[str, float]]:
    """The start and end times that ``snooze`` logged, by task id."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for line in path.read_text().splitlines():
        kind, task_id, when, _ = line.split()
        (starts if kind == "start" else ends)[task_id] = float(when)
    return starts, ends


def test_200_coroutines_run_at_once_in_one_process(
    aclient: Celeriac, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "marks"
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "200") as worker:
        calls = group(aclient.signature("async_jobs.snooze", (str(log), 3.0)) for _ in range(200))
        ids = calls.apply_async().get(timeout=60)
        assert worker.children() and len(worker.children()) == 1
    starts, ends = _marks(log)
    assert set(starts) == set(ends) == set(ids)
    # Every one of the 200 started before the first ended: they all awaited at the same time.
    assert max(starts.values()) < min(ends.values())
    assert len({line.split()[3] for line in log.read_text().splitlines()}) == 1  # one process


def test_processes_runs_that_many_event_loop_children(
    aclient: Celeriac, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    args = ("-P", "asyncio", "-c", "5", "--processes", "2")
    with async_worker(sqlite_or_redis_url, *args) as worker:
        results = [aclient.send_task("async_jobs.counted", (str(runs), 1.0)) for _ in range(10)]
        pids = {r.get(timeout=30) for r in results}
        assert pids == set(worker.children())
        assert len(pids) == 2
        worker.wait_for("concurrency 10", 1)


def test_bind_retries_and_update_state_work_as_on_other_pools(
    aclient: Celeriac, sqlite_or_redis_url: str
) -> None:
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "10"):
        flaky = aclient.send_task("async_jobs.flaky", (2,))
        progress = aclient.send_task("async_jobs.progress")
        assert flaky.get(timeout=30) == 2
        assert progress.get(timeout=30) == "ok"


def test_canvas_of_async_tasks_chain_and_map(aclient: Celeriac, sqlite_or_redis_url: str) -> None:
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "10"):
        sleeper = aclient.signature("async_jobs.sleeper")
        assert xmap(sleeper, [0.01, 0.02, 0.03]).apply_async().get(timeout=30) == [
            0.01,
            0.02,
            0.03,
        ]
        steps = chain(aclient.signature("async_jobs.sleeper", (0.01,)), sleeper.clone())
        assert steps.apply_async().get(timeout=30) == 0.01


def test_soft_limit_raises_inside_the_coroutine_and_hard_limit_cancels_it(
    aclient: Celeriac, sqlite_or_redis_url: str
) -> None:
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "10") as worker:
        neighbour = aclient.send_task("async_jobs.sleeper", (2.5,))
        soft = aclient.send_task("async_jobs.soft_limited")
        hard = aclient.send_task("async_jobs.hard_limited")
        assert soft.get(timeout=30) == "caught soft limit"
        with pytest.raises(TimeLimitExceeded):
            hard.get(timeout=30)
        # Cancelled in time: its process and the task beside it were not touched.
        assert neighbour.get(timeout=30) == 2.5
        assert "replacing its process" not in worker.output


def test_a_coroutine_that_swallows_its_cancellation_gets_its_process_replaced(
    aclient: Celeriac, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "10") as worker:
        first_child = worker.children()
        stubborn = aclient.send_task("async_jobs.stubborn")
        with pytest.raises(TimeLimitExceeded):
            stubborn.get(timeout=30)
        worker.wait_for("replacing its process", 5)
        assert wait_for(lambda: worker.children() and worker.children() != first_child, 10)
        assert aclient.send_task("async_jobs.sleeper", (0.01,)).get(timeout=30) == 0.01


def test_a_plain_function_past_its_hard_limit_gets_its_process_replaced(
    aclient: Celeriac, sqlite_or_redis_url: str
) -> None:
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "10") as worker:
        neighbour = aclient.send_task("async_jobs.sleeper", (4.0,))
        plain = aclient.send_task("async_jobs.plain_hard_limited")
        with pytest.raises(TimeLimitExceeded):
            plain.get(timeout=30)
        worker.wait_for("replacing its process", 5)
        # The coroutine beside it died with the process: its message ran again, in the new one.
        assert neighbour.get(timeout=30) == 4.0


def test_revoke_terminate_cancels_a_running_coroutine(
    aclient: Celeriac, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "10") as worker:
        child = worker.children()
        result = aclient.send_task("async_jobs.counted", (str(runs), 60.0))
        assert wait_for(runs.exists, 15), worker.output
        result.revoke(terminate=True)
        with pytest.raises(TaskRevokedError):
            result.get(timeout=15)
        assert aclient.send_task("async_jobs.sleeper", (0.01,)).get(timeout=30) == 0.01
        assert worker.children() == child  # a cancellation, not a kill
    assert result.state == states.REVOKED


def test_killed_worker_every_task_ends_success(
    aclient: Celeriac, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    first = async_worker(
        sqlite_or_redis_url, "-P", "asyncio", "-c", "50", CELERIAC_TEST_LEASE=LEASE
    ).start()
    try:
        results = [aclient.send_task("async_jobs.counted", (str(runs), 3.0)) for _ in range(30)]
        assert wait_for(lambda: len(count_runs(runs)) == 30, 20), first.output
        for pid in [*first.children(), first.pid]:
            os.kill(pid, signal.SIGKILL)
        first.wait(10)
    finally:
        first.stop()
    second = async_worker(
        sqlite_or_redis_url, "-P", "asyncio", "-c", "50", CELERIAC_TEST_LEASE=LEASE
    )
    with second:
        for result in results:
            result.get(timeout=60)
    assert all(r.state == states.SUCCESS for r in results)
    counts = count_runs(runs)
    assert set(counts) == {r.id for r in results}
    assert set(counts.values()) == {2}  # killed mid-run, each ran once more, and only once


def test_jobs_waiting_in_the_child_go_back_unstarted_when_the_worker_stops(
    aclient: Celeriac, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    args = ("-P", "asyncio", "-c", "2")
    first = async_worker(sqlite_or_redis_url, *args, CELERIAC_TEST_SHUTDOWN_TIMEOUT="0.5")
    first.start()
    try:
        # Short tasks first: the pool then sends the child jobs ahead of its two slots.
        for result in [aclient.send_task("async_jobs.sleeper", (0.01,)) for _ in range(4)]:
            result.get(timeout=30)
        results = [aclient.send_task("async_jobs.counted", (str(runs), 3.0)) for _ in range(8)]
        assert wait_for(lambda: len(count_runs(runs)) == 2, 15), first.output
        # The two running outlast the 0.5 s shutdown timeout: they are killed and given back,
        # and so are the jobs that waited in the child for a slot, unstarted.
        first.signal(signal.SIGTERM)
        assert first.wait(30) == 0
    finally:
        first.stop()
    started_first = set(count_runs(runs))
    assert len(started_first) == 2
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "8"):
        for result in results:
            result.get(timeout=30)
    expected = {r.id: 2 if r.id in started_first else 1 for r in results}
    assert count_runs(runs) == expected


def test_a_task_acknowledged_early_waiting_in_the_child_at_shutdown_is_not_lost_silently(
    aclient: Celeriac, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    args = ("-P", "asyncio", "-c", "2")
    first = async_worker(sqlite_or_redis_url, *args, CELERIAC_TEST_SHUTDOWN_TIMEOUT="0.5")
    first.start()
    try:
        for result in [aclient.send_task("async_jobs.sleeper", (0.01,)) for _ in range(4)]:
            result.get(timeout=30)
        early = [aclient.send_task("async_jobs.counted_early", (str(runs), 3.0)) for _ in range(8)]
        assert wait_for(lambda: len(count_runs(runs)) == 2, 15), first.output
        first.signal(signal.SIGTERM)
        assert first.wait(30) == 0
    finally:
        first.stop()
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "8"):
        # Each ends: run to SUCCESS, or, acknowledged and cut short by the shutdown (running,
        # or waiting in the child for a slot), recorded as lost; none is left PENDING.
        assert wait_for(lambda: all(r.ready() for r in early), 30)
    failed = [r for r in early if r.state == states.FAILURE]
    assert all(isinstance(r.result, WorkerLostError) for r in failed)
    assert 2 <= len(failed) <= 4  # the two running, and those waiting in the child
    assert all(r.state == states.SUCCESS for r in early if r not in failed)


def test_jobs_sent_ahead_behind_long_tasks_are_taken_back_for_another_worker(
    aclient: Celeriac, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "2", "-n", "one@%h") as one:
        for result in [aclient.send_task("async_jobs.sleeper", (0.01,)) for _ in range(4)]:
            result.get(timeout=30)  # short tasks: the pool sends jobs ahead of its 2 slots
        results = [aclient.send_task("async_jobs.counted", (str(runs), 6.0)) for _ in range(4)]
        assert wait_for(lambda: len(count_runs(runs)) == 2, 15), one.output
        args = ("-P", "asyncio", "-c", "2", "-n", "two@%h")
        with async_worker(sqlite_or_redis_url, *args) as two:
            pids = {r.get(timeout=30) for r in results}
            # The two sent ahead behind the 6 s tasks came back and went to the idle worker.
            assert pids & set(one.children())
            assert pids & set(two.children())
    assert set(count_runs(runs).values()) == {1}


def test_a_plain_function_runs_in_a_thread_of_the_asyncio_child(
    aclient: Celeriac, sqlite_or_redis_url: str
) -> None:
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "10") as worker:
        plain = aclient.send_task("async_jobs.plain_where").get(timeout=30)
        coroutine = aclient.send_task("async_jobs.where").get(timeout=30)
        assert plain["pid"] == coroutine["pid"] == worker.children()[0]
        assert plain["thread"].startswith("celeriac-sync")
        assert coroutine["thread"] == "MainThread"


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_an_async_task_runs_on_the_other_pools(
    aclient: Celeriac, sqlite_or_redis_url: str, pool: str
) -> None:
    with async_worker(sqlite_or_redis_url, "-P", pool, "-c", "2") as worker:
        where = aclient.send_task("async_jobs.where").get(timeout=30)
        assert aclient.send_task("async_jobs.flaky", (1,)).get(timeout=30) == 1
        # The loop is kept per thread: a second call reuses it.
        assert aclient.send_task("async_jobs.sleeper", (0.01,)).get(timeout=30) == 0.01
        if pool == "prefork":
            assert where["pid"] in worker.children()
            assert aclient.send_task("async_jobs.soft_limited").get(timeout=30) == (
                "caught soft limit"
            )
        else:
            assert where["pid"] == worker.pid


def test_a_coroutine_blocking_the_loop_is_logged_with_its_name(
    aclient: Celeriac, sqlite_or_redis_url: str
) -> None:
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "10") as worker:
        result = aclient.send_task("async_jobs.blocker", (1.5,))
        assert result.get(timeout=30) == 1.5
        worker.wait_for(f"async_jobs.blocker[{result.id}] blocked the event loop for", 5)
        line = next(x for x in worker.lines if "blocked the event loop for" in x)
        seconds = float(line.split("blocked the event loop for ")[1].split("s")[0])
        assert seconds >= 1.0


def test_processes_is_refused_with_another_pool(sqlite_url: str) -> None:
    from support.processes import run_cli

    done = run_cli(sqlite_url, "-A", "jobs", "worker", "-P", "threads", "--processes", "2")
    assert done.returncode != 0
    assert "--processes is for the asyncio pool" in done.stdout + done.stderr


def test_jobs_that_never_wait_share_a_task_those_that_wait_keep_theirs(
    aclient: Celeriac, sqlite_or_redis_url: str
) -> None:
    with async_worker(sqlite_or_redis_url, "-P", "asyncio", "-c", "10"):
        calls = [(f"s{n}", 0.0) for n in range(60)] + [(f"w{n}", 0.05) for n in range(30)]
        calls += [(f"s{n}", 0.0) for n in range(60, 120)]
        seen = group(aclient.signature("async_jobs.isolated", call) for call in calls)
        outcomes = seen.apply_async().get(timeout=60)
        by_task = aclient.send_task("async_jobs.tasks_seen").get(timeout=30)
    # Each job saw its own context: nothing another job set, and its own value at the end.
    assert [o["found"] for o in outcomes] == [None] * len(calls)
    assert [o["after"] for o in outcomes] == [tag for tag, _ in calls]
    assert sorted(tag for tags in by_task for tag in tags) == sorted(
        f"{'wait' if seconds else 'sync'}:{tag}" for tag, seconds in calls
    )
    # A job that waited was the last its task ran: no later job ever saw its task.
    for tags in by_task:
        assert all(tag.startswith("sync:") for tag in tags[:-1]), tags
    # Jobs that end without waiting run one after another on one task, not one task each.
    assert len(by_task) < len(calls) / 2
