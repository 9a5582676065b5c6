"""``--autoscale MAX,MIN``: the pool grows while work waits and shrinks back when idle.

Four ``gate`` tasks each wait until four of them run at once, so they can only finish if a
pool that starts with one process grows to four. With ``AUTOSCALE_KEEPALIVE`` (Celery's
variable) short, the idle processes then go, back to MIN.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from celeriac import Celeriac
from celeriac.exceptions import ConfigurationError
from celeriac.worker.autoscale import Autoscaler, parse_autoscale
from celeriac.worker.runner import TaskRunner
from celeriac.worker.threads import ThreadPool
from support.processes import WorkerProcess
from support.waiting import wait_for


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_the_pool_grows_to_max_while_work_waits_and_shrinks_back(
    pool: str, client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    worker = WorkerProcess(
        sqlite_url, "-P", pool, "--autoscale", "4,1", app="throttled", AUTOSCALE_KEEPALIVE="1"
    )
    with worker:
        assert "concurrency 1" in worker.output
        if pool == "prefork":
            assert wait_for(lambda: len(worker.children()) == 1, 10)
        results = [client.send_task("throttled.gate", (str(gates), 4)) for _ in range(4)]
        assert [r.get(timeout=60) for r in results] == [4, 4, 4, 4]
        worker.wait_for("pool grown to", 10)
        worker.wait_for("pool shrunk to 1", 30)
        if pool == "prefork":
            assert wait_for(lambda: len(worker.children()) == 1, 10), worker.children()
        # Shrunk, it still grows again.
        again = tmp_path / "again"
        again.mkdir()
        results = [client.send_task("throttled.gate", (str(again), 3)) for _ in range(3)]
        assert [r.get(timeout=60) for r in results] == [3, 3, 3]


def test_without_autoscale_the_gates_cannot_all_run(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    """The control: with two processes, four gates never meet (each gives up after 2 s)."""
    gates = tmp_path / "gates"
    gates.mkdir()
    with WorkerProcess(sqlite_url, "-P", "threads", "-c", "2", app="throttled"):
        first = client.send_task("throttled.gate", (str(gates), 4, 2.0))
        with pytest.raises(TimeoutError):
            first.get(timeout=60)


def test_parse_autoscale() -> None:
    assert parse_autoscale("10,3") == (10, 3)
    assert parse_autoscale("10") == (10, 0)
    for bad in ("3,10", "x,1", "0", ""):
        with pytest.raises(ConfigurationError, match="--autoscale"):
            parse_autoscale(bad)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_autoscaler_grows_by_what_waits_and_shrinks_after_keepalive() -> None:
    app = Celeriac("scale", broker="memory://scale")
    pool = ThreadPool(TaskRunner(app.tasks, app.serializer, app.middleware), 1)
    pool.start()
    clock = _Clock()
    scaler = Autoscaler(pool, maximum=4, minimum=1, keepalive=5.0, clock=clock)
    assert scaler.headroom() == 3
    assert scaler.scale(waiting=2)  # one idle thread takes one; one more is needed
    assert pool.size() == 2
    assert scaler.scale(waiting=10)
    assert pool.size() == 4 and scaler.headroom() == 0
    assert not scaler.scale(waiting=0)  # idle, but not for long yet
    clock.now = 4.0
    assert not scaler.scale(waiting=0)
    clock.now = 5.0
    assert scaler.scale(waiting=0)
    assert pool.size() == 1 and pool.free_slots() == 1
    pool.stop(1)
