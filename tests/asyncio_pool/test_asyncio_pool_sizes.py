"""The asyncio pool in this process (its children forked from it): slots that grow and shrink,
children replaced after ``max_tasks_per_child`` jobs or past ``max_memory_per_child``, and the
warning for a plain function's soft time limit. The real CLI's side is in
``test_asyncio_worker_sizes.py``."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celeriac, states
from celeriac.worker.asyncio_pool import AsyncioPool
from celeriac.worker.pool import Ending, Finished, Job
from celeriac.worker.runner import TaskRunner
from support.pools import collect, make_job

app = Celeriac("asyncio-sizes", broker="memory://asyncio-sizes")


@app.task
async def marks(seconds: float) -> list[float]:
    """Its process, when it started and when it ended (wall clock)."""
    started = time.time()
    await asyncio.sleep(seconds)
    return [os.getpid(), started, time.time()]


@app.task
def plain(x: int) -> int:
    return x


def job(task: Any, *args: Any, soft: float | None = None) -> Job:
    return make_job(app, task.name, *args, soft=soft)


def poll_until(pool: AsyncioPool, check: Any, timeout: float = 10.0) -> list[Finished]:
    """Poll ``pool`` until ``check()``; what finished meanwhile."""
    finished: list[Finished] = []
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        finished += pool.poll(0.02, [])
    assert check()
    return finished


def values(finished: list[Finished]) -> dict[int, Any]:
    """Each job's returned value, by key (every one a success)."""
    assert [f.outcome.state for f in finished] == [states.SUCCESS] * len(finished), finished
    return {
        f.job.key: app.serializer.loads(f.outcome.content_type, f.outcome.payload) for f in finished
    }


def make_pool(slots: int, **options: Any) -> AsyncioPool:
    runner = TaskRunner(app.tasks, app.serializer, app.middleware)
    pool = AsyncioPool(runner, slots, **options)
    pool.start()
    return pool


@pytest.fixture
def pools() -> Iterator[list[AsyncioPool]]:
    made: list[AsyncioPool] = []
    yield made
    for pool in made:
        pool.stop(0)


def warmed(pools: list[AsyncioPool], slots: int, **options: Any) -> AsyncioPool:
    """A pool that has run three ``marks(0)``: its tasks are short, so jobs are sent ahead."""
    pool = make_pool(slots, **options)
    pools.append(pool)
    for _ in range(3):
        pool.submit(job(marks, 0))
        collect(pool, 1)
    return pool


def test_grown_slots_start_the_jobs_waiting_in_the_child(pools: list[AsyncioPool]) -> None:
    pool = warmed(pools, 1)
    first, second = job(marks, 1.5), job(marks, 0)
    assert pool.free_slots() == 2  # one slot, and one job ahead of it: short tasks
    pool.submit(first)
    pool.submit(second)
    poll_until(pool, lambda: any(p.waiting for p in pool._procs))  # the child queued one
    pool.pool_grow(1)
    assert pool.size() == 2
    done = values(collect(pool, 2))
    # The waiting job started in the new slot before the long one ended: not after it.
    assert done[second.key][1] < done[first.key][2]
    assert done[second.key][0] == done[first.key][0]  # no process was started for it


def test_shrinking_takes_idle_slots_only(pools: list[AsyncioPool]) -> None:
    pool = make_pool(3)
    pools.append(pool)
    running = job(marks, 1.0)
    pool.submit(running)
    assert pool.pool_shrink(5) == 2  # the busy slot stays
    assert pool.size() == 1 and pool.free_slots() == 0
    assert pool.pool_shrink(1) == 0
    collect(pool, 1)
    assert pool.free_slots() > 0
    pool.pool_grow(2)
    assert pool.size() == 3


def test_slots_spread_over_the_children_and_can_start_from_none(
    pools: list[AsyncioPool],
) -> None:
    runner = TaskRunner(app.tasks, app.serializer, app.middleware)
    pool = AsyncioPool(runner, 0, processes=2)  # as --autoscale builds it: MIN slots in all
    pool.pool_grow(3)
    pool.start()
    pools.append(pool)
    assert sorted(p.slots for p in pool._procs) == [1, 2]
    assert pool.size() == 3
    assert pool.pool_shrink(3) == 3 and pool.size() == 0 and pool.free_slots() == 0
    pool.pool_grow(1)
    pool.submit(job(marks, 0))
    assert len(collect(pool, 1)) == 1


def test_max_tasks_per_child_replaces_the_child_and_runs_every_job_once(
    pools: list[AsyncioPool],
) -> None:
    pool = make_pool(10, max_tasks_per_child=2)
    pools.append(pool)
    jobs = []
    for _ in range(5):
        assert pool.free_slots() > 0
        jobs.append(job(marks, 0.05))
        pool.submit(jobs[-1])
    done = values(collect(pool, 5))
    assert set(done) == {j.key for j in jobs}
    pids = [int(done[j.key][0]) for j in jobs]
    assert [pids.count(pid) for pid in dict.fromkeys(pids)] == [2, 2, 1]
    # The two retired children are told to stop once idle, and go: one serves.
    poll_until(pool, lambda: len(pool.pids()) == 1)
    assert pool.pids() == [pids[-1]] and pool.size() == 10


def test_a_child_past_its_memory_limit_hands_back_its_waiting_jobs_and_is_replaced(
    pools: list[AsyncioPool],
) -> None:
    pool = warmed(pools, 2, max_memory_per_child=1)  # 1 KiB: every child is past it
    first_child = pool.pids()[-1]
    jobs = [job(marks, s) for s in (0.2, 1.0, 0.2, 0.2)]
    for each in jobs:  # two run, two wait in the child
        pool.submit(each)
    done = collect(pool, 4)
    # The first ended: the job behind it took its slot, the child said it retires, and the
    # one still waiting came back unstarted, to be run elsewhere.
    by_key = {f.job.key: f for f in done}
    assert by_key[jobs[3].key].ending is Ending.RETURNED
    ran = values([by_key[j.key] for j in jobs[:3]])
    assert {int(v[0]) for v in ran.values()} == {first_child}
    poll_until(pool, lambda: first_child not in pool.pids())
    pool.submit(job(marks, 0))
    (again,) = values(collect(pool, 1)).values()
    assert int(again[0]) != first_child


def test_a_plain_function_with_a_soft_limit_is_warned_about_once(
    pools: list[AsyncioPool], caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_pool(4)
    pools.append(pool)
    with caplog.at_level(logging.WARNING, logger="celeriac.worker"):
        for n in range(3):
            pool.submit(job(plain, n, soft=5.0))
        pool.submit(job(marks, 0, soft=5.0))  # an async def: its soft limit works
        assert sorted(values(collect(pool, 4)).values(), key=str)[:3] == [0, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if "soft time limit" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{plain.name} is a plain function with a soft time limit")
