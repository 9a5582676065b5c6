"""The prefork pool's mailbox: a busy child is offered its next jobs, which can be taken back."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator

import pytest

from celeriac import Celeriac
from celeriac.worker import prefork
from celeriac.worker.mailbox import MAX_DEPTH, Mailbox
from celeriac.worker.pool import Ending, Job
from celeriac.worker.prefork import SHORT_TASK, PreforkPool
from celeriac.worker.runner import TaskRunner
from support.pools import collect, make_job

app = Celeriac("mailbox-tests", broker="memory://mailbox-tests")


@app.task
def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def job(seconds: float) -> Job:
    return make_job(app, nap.name, seconds)


@pytest.fixture
def pool() -> Iterator[PreforkPool]:
    pool = PreforkPool(TaskRunner(app.tasks, app.serializer, app.middleware), 1)
    pool.start()
    for _ in range(3):  # nap(0) runs show the pool that nap is a short task
        pool.submit(job(0))
        collect(pool, 1)
    yield pool
    pool.stop(0)


def test_offered_jobs_start_in_order_when_the_short_task_ahead_ends(
    pool: PreforkPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # offers stay allowed, as many as a mailbox holds, however slow the day (a nap(0) that
    # waited for the CPU would otherwise count as a task too long to be offered 8 ahead)
    monkeypatch.setattr(prefork, "SHORT_TASK", 5.0)
    monkeypatch.setattr(prefork, "AHEAD_SECONDS", 5.0)
    first = job(0.005)
    pool.submit(first)
    assert pool.free_slots() == 0
    offered = [job(0) for _ in range(MAX_DEPTH)]
    assert all(pool.offer(j) for j in offered)  # a task of about nothing: the mailbox fills
    assert pool.offered() == MAX_DEPTH
    assert not pool.offer(job(0))
    done = collect(pool, 1 + MAX_DEPTH)
    assert [(f.job.key, f.ending, f.outcome.state) for f in done] == [
        (j.key, Ending.RAN, "SUCCESS") for j in [first, *offered]
    ]
    assert pool.offered() == 0 and pool.free_slots() == 1


def test_offers_made_after_the_child_looked_in_its_mailbox_still_run(
    pool: PreforkPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # offers stay allowed, as many as a mailbox holds, however slow the day (a nap(0) that
    # waited for the CPU would otherwise count as a task too long to be offered 8 ahead)
    monkeypatch.setattr(prefork, "SHORT_TASK", 5.0)
    monkeypatch.setattr(prefork, "AHEAD_SECONDS", 5.0)
    first = job(0)
    pool.submit(first)
    time.sleep(0.05)  # it ends meanwhile, finds its mailbox empty, and waits on its pipe
    offered = [job(0) for _ in range(3)]
    assert all(pool.offer(j) for j in offered)  # the pool has not seen the outcome yet
    done = collect(pool, 4, timeout=5)
    assert [(f.job.key, f.ending) for f in done] == [(j.key, Ending.RAN) for j in [first, *offered]]
    assert pool.offered() == 0 and pool.free_slots() == 1


def test_a_task_near_the_short_limit_is_offered_one_job_ahead(pool: PreforkPool) -> None:
    for _ in range(3):
        pool.submit(job(SHORT_TASK * 0.6))
        collect(pool, 1)
    pool.submit(job(SHORT_TASK * 0.6))
    assert pool.offer(job(0))
    assert not pool.offer(job(0))
    collect(pool, 2)


def test_the_mailbox_gives_back_its_newest_jobs_first() -> None:
    mailbox = Mailbox(multiprocessing.get_context("fork"))
    for n in range(MAX_DEPTH):
        assert mailbox.offer(n)
    assert not mailbox.offer("full")
    assert mailbox.take() == 0
    assert mailbox.retract(2) == 2  # MAX_DEPTH - 1 and MAX_DEPTH - 2
    assert [mailbox.take() for _ in range(MAX_DEPTH - 3)] == list(range(1, MAX_DEPTH - 2))
    assert mailbox.take() is None and mailbox.retract() == 0
    assert not mailbox.offer(b"x" * 70_000)  # bigger than the mailbox: sent only to an idle child
    assert mailbox.offer("again") and mailbox.take() == "again"


def test_an_offer_behind_a_slow_task_is_taken_back(pool: PreforkPool) -> None:
    slow, behind = job(1.0), job(0)
    pool.submit(slow)
    assert pool.offer(behind)
    (back,) = collect(pool, 1, timeout=SHORT_TASK + 0.5)
    assert (back.job.key, back.ending) == (behind.key, Ending.RETURNED)
    (done,) = collect(pool, 1)
    assert (done.job.key, done.ending) == (slow.key, Ending.RAN)


def test_offers_can_be_taken_back_for_an_idle_process(pool: PreforkPool) -> None:
    pool.submit(job(0.02))
    offered = job(0)
    assert pool.offer(offered)
    assert [(f.job.key, f.ending) for f in pool.retract_offers()] == [
        (offered.key, Ending.RETURNED)
    ]
    assert pool.offered() == 0


def test_no_offer_to_a_process_running_an_unmeasured_or_long_task(pool: PreforkPool) -> None:
    pool.submit(job(0.3))
    time.sleep(SHORT_TASK * 1.5)
    assert not pool.offer(job(0))  # the task ahead already ran past SHORT_TASK
    collect(pool, 1)


def test_a_dead_child_returns_the_offer_it_had_not_taken(pool: PreforkPool) -> None:
    running, offered = job(0.02), job(0)
    pool.submit(running)
    assert pool.offer(offered)
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)
    done = {f.job.key: f for f in collect(pool, 2)}
    assert done[running.key].ending is Ending.DIED
    assert done[offered.key].ending is Ending.RETURNED


def test_terminating_an_offered_job_takes_it_back(pool: PreforkPool) -> None:
    pool.submit(job(0.02))
    offered = job(0)
    assert pool.offer(offered)
    assert pool.terminate(offered.task_id, signal.SIGTERM)
    done = {f.job.key: f for f in collect(pool, 2)}
    assert done[offered.key].ending is Ending.RETURNED


def test_stopping_returns_offers_that_had_not_started(pool: PreforkPool) -> None:
    running, offered = job(0.02), job(0)
    pool.submit(running)
    assert pool.offer(offered)
    done = {f.job.key: f for f in pool.stop(5)}
    assert done[offered.key].ending is Ending.RETURNED
    assert done[running.key].outcome.state == "SUCCESS"
