"""What a worker holds ahead of its processes comes back: on warm and cold shutdown at once, and
after its lease when the worker is killed.

A worker running tasks of about a millisecond holds the most: messages kept ready in its main
process and next jobs in each child's mailbox. Each test lets one such worker run part of a
stream of ``counted`` tasks (each logs its run when it starts), stops it in one way, and lets a
second worker finish the rest; then it counts every task id.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from celeriac import Celeriac, states
from support.processes import WorkerProcess, count_runs
from support.waiting import wait_for

TASKS = 1500
STOP_AFTER = 300  # runs logged before the first worker is stopped: it is busy, holding ahead
CONCURRENCY = 2
LEASE = "2"
TIMEOUT = 120.0  # seconds for every result (a deadline for a hang, not a speed limit)


@pytest.fixture
def broker_url(sqlite_or_redis_url: str) -> str:
    """The broker of each test: SQLite, then Redis (``tests/conftest.py``)."""
    return sqlite_or_redis_url


def _send(client: Celeriac, runs: Path) -> list[str]:
    return [client.send_task("jobs.counted", (str(runs), 0.001)).id for _ in range(TASKS)]


def _finish_and_count(client: Celeriac, broker_url: str, ids: list[str], runs: Path) -> None:
    """A second worker runs what is left; every task ends SUCCESS."""
    with WorkerProcess(broker_url, "-c", str(CONCURRENCY), CELERIAC_TEST_LEASE=LEASE):
        for task_id in ids:
            client.AsyncResult(task_id).get(timeout=TIMEOUT)
    assert {client.AsyncResult(i).state for i in ids} == {states.SUCCESS}
    assert client.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    assert set(count_runs(runs)) == set(ids)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["warm", "cold"])
def test_what_a_worker_holds_ahead_is_given_back_on_shutdown(
    broker_url: str, tmp_path: Path, signum: int
) -> None:
    runs = tmp_path / "runs"
    client = Celeriac("client", broker=broker_url)
    ids = _send(client, runs)
    # A long lease: whatever the worker did not give back stays out of reach for this test.
    first = WorkerProcess(broker_url, "-c", str(CONCURRENCY), CELERIAC_TEST_LEASE="60").start()
    try:
        assert wait_for(lambda: sum(count_runs(runs).values()) >= STOP_AFTER, TIMEOUT)
        first.signal(signum)
        assert first.wait(30) == 0
    finally:
        first.stop()
    done = {i for i in ids if client.AsyncResult(i).state == states.SUCCESS}
    assert STOP_AFTER <= len(done) < TASKS
    # Given back at once, not held under a lease: everything not done can be fetched now.
    back = client.broker.fetch(["celeriac"], TASKS, lease=60, consumer="probe", timeout=0)
    assert len(back) == TASKS - len(done)
    for delivery in back:
        assert client.broker.requeue(delivery)
    _finish_and_count(client, broker_url, ids, runs)
    extra = sum(count_runs(runs).values()) - TASKS
    if signum == signal.SIGTERM:
        assert extra == 0  # running tasks finished; nothing ran twice
    else:
        assert extra <= CONCURRENCY  # only the tasks killed while running ran again
    client.close()


def test_what_a_killed_worker_held_ahead_returns_after_its_lease(
    broker_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    client = Celeriac("client", broker=broker_url)
    ids = _send(client, runs)
    first = WorkerProcess(broker_url, "-c", str(CONCURRENCY), CELERIAC_TEST_LEASE=LEASE).start()
    try:
        assert wait_for(lambda: sum(count_runs(runs).values()) >= STOP_AFTER, TIMEOUT)
        for pid in [first.pid, *first.children()]:
            os.kill(pid, signal.SIGKILL)
        first.wait(10)
    finally:
        first.stop()
    _finish_and_count(client, broker_url, ids, runs)
    client.close()
