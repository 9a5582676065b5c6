"""A slow task does not hold back fast ones: two real workers (``-c 1`` each) on one broker.

The slow task is sent first, then 50 fast ones. The worker that takes the slow task has no free
process until it ends, so any fast task it holds meanwhile (kept ready, handed to its busy child)
waits behind it; the other worker is idle and could have run it. The tasks log the order in which
they finish, so the test compares orders and counts, never durations: every fast task must finish
before the slow one does. "Warm" first runs a stream of fast tasks, so that the workers have
learned that tasks are short (and hold the most ahead) when the slow one arrives.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from celeriac import Celeriac
from support.processes import WorkerProcess

SLOW_SECONDS = 5.0  # long enough that a fast task given back after waiting still beats it
FAST = 50
WARM_UP = 200
TIMEOUT = 60.0  # seconds any result may take (a deadline for a hang, not a speed limit)


@pytest.fixture
def broker_url(sqlite_or_redis_url: str) -> str:
    """The broker of each test: SQLite, then Redis (``tests/conftest.py``)."""
    return sqlite_or_redis_url


def _finished(log: Path) -> list[tuple[str, str, float]]:
    """(what, worker, monotonic time) per line of the task log, in the order written."""
    rows = []
    for line in log.read_text().splitlines():
        what, worker, when = line.split()
        rows.append((what, worker, float(when)))
    return rows


def _explain(rows: list[tuple[str, str, float]]) -> str:
    """Which fast tasks finished after the slow one, on which worker, how long after it began."""
    began = next(when for what, _, when in rows if what == "slow-start")
    slow_worker = next(worker for what, worker, _ in rows if what == "slow-start")
    ended = next(i for i, (what, _, _) in enumerate(rows) if what == "slow-end")
    late = [(what, worker, f"+{when - began:.2f}s") for what, worker, when in rows[ended + 1 :]]
    return f"slow task ran on {slow_worker}; finished after it: {late}"


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_fast_tasks_do_not_wait_behind_a_slow_one(
    broker_url: str, tmp_path: Path, warm: bool
) -> None:
    log = tmp_path / "finished.log"
    client = Celeriac("client", broker=broker_url)
    workers = [
        WorkerProcess(broker_url, "-c", "1", "-n", f"{name}@%h", app="fairness")
        for name in ("one", "two")
    ]
    try:
        for worker in workers:
            worker.start()
        if warm:
            handles = [
                client.send_task("fairness.fast", (str(log), "warm")) for _ in range(WARM_UP)
            ]
            for handle in handles:
                handle.get(timeout=TIMEOUT)
        slow = client.send_task("fairness.slow", (str(log), SLOW_SECONDS))
        fast = [client.send_task("fairness.fast", (str(log), str(i))) for i in range(FAST)]
        for handle in fast:
            handle.get(timeout=TIMEOUT)
        slow.get(timeout=TIMEOUT)
    except BaseException as exc:
        for worker in workers:
            worker.add_log_to(exc)
        raise
    finally:
        for worker in workers:
            worker.stop()
        client.close()

    rows = [row for row in _finished(log) if row[0] != "fast-warm"]
    order = [what for what, _, _ in rows]
    # Each ran once: the slow task's start and end, and every fast task.
    assert sorted(order) == sorted(["slow-start", "slow-end", *(f"fast-{i}" for i in range(FAST))])
    # None waited for the slow one: they all finished before it did.
    assert order[-1] == "slow-end", _explain(rows)
    print(_summary(rows))  # for the reader of -s or -rA; the target is within 1 s, not asserted


def _summary(rows: list[tuple[str, str, float]]) -> str:
    """How long after the slow task began the last fast one finished, and who ran how many."""
    began, slow_worker = next((when, worker) for what, worker, when in rows if what == "slow-start")
    last = max(when for what, _, when in rows if what.startswith("fast-"))
    per_worker: dict[str, int] = {}
    for what, worker, _ in rows:
        if what.startswith("fast-"):
            per_worker[worker] = per_worker.get(worker, 0) + 1
    return (
        f"last fast task finished +{last - began:.2f}s after the slow one began (on"
        f" {slow_worker}); fast tasks per worker: {per_worker}"
    )
