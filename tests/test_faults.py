"""Fault tests on the SQLite broker: workers killed, frozen, terminated; every run counted.

Each test starts real ``celeriac -A jobs worker`` subprocesses and counts runs through the
``counted`` tasks, which append one line per run to a file.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from celeriac import Celeriac, TaskRevokedError, WorkerLostError, states
from celeriac.worker.wakeup import WakePipe
from support.processes import WorkerProcess, count_runs
from support.waiting import wait_for

LEASE = "2"


def test_killed_worker_task_runs_again_after_the_lease(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    first = WorkerProcess(sqlite_url, "-c", "1", CELERIAC_TEST_LEASE=LEASE).start()
    try:
        result = client.send_task("jobs.counted", (str(runs), 3.0))
        assert wait_for(lambda: runs.exists(), 10), first.output
        killed_at = time.monotonic()
        for pid in [*first.children(), first.pid]:
            os.kill(pid, signal.SIGKILL)
        first.wait(10)
    finally:
        first.stop()
    with WorkerProcess(sqlite_url, "-c", "1", CELERIAC_TEST_LEASE=LEASE) as second:
        value = result.get(timeout=30)
        recovered_after = time.monotonic() - killed_at
        assert value["pid"] in second.children()
    assert result.state == states.SUCCESS
    assert count_runs(runs) == {result.id: 2}
    # The second run starts once the 2 s lease runs out, and takes 3 s itself.
    assert recovered_after < 2.0 + 3.0 + 4.0


def test_killed_pool_child_task_is_back_within_two_seconds(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    runs, marker = tmp_path / "runs", tmp_path / "marker"
    with WorkerProcess(sqlite_url, "-c", "1", CELERIAC_TEST_LEASE="30") as worker:
        result = client.send_task("jobs.counted_once_slow", (str(runs), 60.0, str(marker)))
        assert wait_for(marker.exists, 10), worker.output
        (child,) = worker.children()
        os.kill(child, signal.SIGKILL)
        killed_at = time.monotonic()
        value = result.get(timeout=10)
        assert time.monotonic() - killed_at < 2.0
        assert value["pid"] != child
    assert count_runs(runs) == {result.id: 2}


def test_long_task_keeps_its_lease_and_runs_once(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    with (
        WorkerProcess(sqlite_url, "-c", "1", "-n", "one@%h", CELERIAC_TEST_LEASE=LEASE),
        WorkerProcess(sqlite_url, "-c", "1", "-n", "two@%h", CELERIAC_TEST_LEASE=LEASE),
    ):
        # Three and a half leases: the idle worker would run it again if its lease lapsed.
        result = client.send_task("jobs.counted", (str(runs), 3.5 * float(LEASE)))
        result.get(timeout=30)
    assert count_runs(runs) == {result.id: 1}


def test_frozen_worker_cannot_overwrite_or_ack_what_another_worker_took(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    frozen = WorkerProcess(sqlite_url, "-c", "1", "-n", "frozen@%h", CELERIAC_TEST_LEASE=LEASE)
    frozen.start()
    try:
        result = client.send_task("jobs.counted", (str(runs), 6.0))
        assert wait_for(runs.exists, 10), frozen.output
        frozen.signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        with WorkerProcess(
            sqlite_url, "-c", "1", "-n", "rescuer@%h", CELERIAC_TEST_LEASE=LEASE
        ) as rescuer:
            assert wait_for(lambda: count_runs(runs).get(result.id) == 2, 15), rescuer.output
            time.sleep(max(0.0, stopped_at + 3 * float(LEASE) - time.monotonic()))
            frozen.signal(signal.SIGCONT)
            # The frozen worker's child has finished meanwhile; its main process now sees the
            # outcome and must discard it: the rescuer still holds the message.
            frozen.wait_for("lease was lost", 10)
            assert result.state == states.PENDING
            assert client.broker.queue_lengths(["celeriac"]) == {"celeriac": 1}
            value = result.get(timeout=30)
            assert value["hostname"].startswith("rescuer@")
    finally:
        frozen.stop()
    assert result.get(timeout=1)["hostname"].startswith("rescuer@")
    assert count_runs(runs) == {result.id: 2}
    assert client.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


def test_revoke_terminate_ends_a_running_task(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    with WorkerProcess(sqlite_url, "-c", "1") as worker:
        result = client.send_task("jobs.counted", (str(runs), 60.0))
        assert wait_for(runs.exists, 10)
        revoked_at = time.monotonic()
        result.revoke(terminate=True)
        with pytest.raises(TaskRevokedError):
            result.get(timeout=10)
        worker.wait_for("terminating task", 5)
        assert wait_for(lambda: client.broker.queue_lengths(["celeriac"])["celeriac"] == 0, 2)
        assert time.monotonic() - revoked_at < 2.0
        # The pool replaced the killed child and keeps working.
        assert client.send_task("jobs.add", (1, 2)).get(timeout=10) == 3
    assert result.state == states.REVOKED


def test_revoke_before_running_is_stored_not_kept_in_one_worker(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    result = client.send_task("jobs.counted", (str(runs),))
    result.revoke()
    with WorkerProcess(sqlite_url, "-c", "1"):
        assert client.send_task("jobs.add", (2, 2)).get(timeout=10) == 4
    assert result.state == states.REVOKED
    assert not runs.exists()
    assert client.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


def test_a_wake_pipe_first_used_by_two_threads_at_once_is_one_pipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Why the test above used to fail now and then: a message waits when the worker starts,
    so the consumer thread's first ``wake()`` and the main loop's first poll (which registers
    ``fileno()`` with its selector) both opened the consumer's wake pipe. The loop watched one
    pipe, the ``WakePipe`` kept the other, and the next poll died on ``KeyError: <WakePipe>
    is not registered``. Now only the side that waits opens it. Here the first ``os.pipe()``
    waits for a second caller, so the race would be lost every time it could happen."""
    opened: list[int] = []
    second_caller = threading.Event()
    real_pipe = os.pipe
    consumer = threading.Thread(target=lambda: pipe.wake())  # the consumer's first wake-up

    def pipe_that_waits_for_a_second_caller() -> tuple[int, int]:
        fds = real_pipe()
        opened.extend(fds)
        if len(opened) > 2:
            second_caller.set()
        else:  # until another thread opens one too, or is done without
            wait_for(lambda: second_caller.is_set() or not consumer.is_alive(), 2, 0.01)
        return fds

    monkeypatch.setattr(os, "pipe", pipe_that_waits_for_a_second_caller)
    pipe = WakePipe()
    consumer.start()
    try:
        watched = pipe.fileno()  # what the main loop's selector registers
        consumer.join(10)
        assert len(opened) == 2, "two pipes opened"
        assert pipe.fileno() == watched
    finally:
        monkeypatch.undo()
        for fd in opened:
            os.close(fd)


def test_thousand_tasks_through_two_children_each_succeed_once(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    results = [client.send_task("jobs.counted", (str(runs),)) for _ in range(1000)]
    with WorkerProcess(sqlite_url, "-c", "2"):
        for result in results:
            result.get(timeout=60)
    records = client.backend.get_many([r.id for r in results])
    assert {record.state for record in records.values()} == {states.SUCCESS}
    assert len(records) == 1000
    assert count_runs(runs) == {r.id: 1 for r in results}


def test_time_limits_soft_raises_in_task_and_hard_kills(client: Celeriac, sqlite_url: str) -> None:
    with WorkerProcess(sqlite_url, "-c", "1") as worker:
        assert client.send_task("jobs.soft_limited").get(timeout=15) == "caught soft limit"
        hard = client.send_task("jobs.hard_limited")
        with pytest.raises(Exception, match="time limit"):
            hard.get(timeout=15)
        assert hard.state == states.FAILURE
        assert client.send_task("jobs.add", (20, 22)).get(timeout=10) == 42
        assert "TimeLimitExceeded" in worker.output


def test_task_that_kills_its_process_is_dead_lettered(client: Celeriac, sqlite_url: str) -> None:
    with WorkerProcess(sqlite_url, "-c", "2") as worker:
        poison = client.send_task("jobs.kill_own_process")
        good = [client.send_task("jobs.add", (i, i)) for i in range(20)]
        assert [r.get(timeout=30) for r in good] == [2 * i for i in range(20)]
        with pytest.raises(Exception, match="died"):
            poison.get(timeout=30)
        assert worker.process is not None and worker.process.poll() is None
    (letter,) = client.broker.dead_letters()
    assert "died" in letter.reason
    assert poison.state == states.FAILURE


def test_a_task_acknowledged_early_whose_process_died_is_recorded_as_lost(
    client: Celeriac, sqlite_url: str
) -> None:
    with WorkerProcess(sqlite_url, "-c", "1"):
        lost = client.send_task("jobs.kill_own_process_acked_early")
        # Its message is gone (acks_late=False), so it never runs again: nobody waits forever.
        with pytest.raises(WorkerLostError, match="killed by SIGKILL"):
            lost.get(timeout=15)
        assert client.send_task("jobs.add", (1, 2)).get(timeout=10) == 3
    assert client.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    assert client.broker.dead_letters() == []


def test_sigterm_finishes_running_tasks_and_gives_back_the_rest(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    worker = WorkerProcess(sqlite_url, "-c", "1", "--prefetch-multiplier", "2").start()
    try:
        running = client.send_task("jobs.counted", (str(runs), 2.0))
        waiting = client.send_task("jobs.counted", (str(runs), 0.0))
        assert wait_for(runs.exists, 10)
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    finally:
        worker.stop()
    assert running.state == states.SUCCESS
    assert waiting.state == states.PENDING
    assert client.broker.queue_lengths(["celeriac"]) == {"celeriac": 1}
    with WorkerProcess(sqlite_url, "-c", "1"):
        waiting.get(timeout=10)
    assert count_runs(runs) == {running.id: 1, waiting.id: 1}


def test_second_signal_gives_everything_back_at_once(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    worker = WorkerProcess(sqlite_url, "-c", "1").start()
    try:
        slow = client.send_task("jobs.counted", (str(runs), 30.0))
        assert wait_for(runs.exists, 10)
        worker.signal(signal.SIGTERM)
        time.sleep(0.3)
        stopped_at = time.monotonic()
        worker.signal(signal.SIGINT)
        assert worker.wait(10) == 0
        assert time.monotonic() - stopped_at < 5
    finally:
        worker.stop()
    assert slow.state == states.PENDING
    assert client.broker.queue_lengths(["celeriac"]) == {"celeriac": 1}


def test_pool_children_die_with_the_main_process(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    worker = WorkerProcess(sqlite_url, "-c", "2").start()
    try:
        client.send_task("jobs.counted", (str(runs), 30.0))
        assert wait_for(runs.exists, 10)
        children = worker.children()
        assert len(children) == 2
        worker.signal(signal.SIGKILL)
        worker.wait(10)
        # An orphan would finish the task while another worker runs it again: none may live on.
        assert wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 5)
    finally:
        worker.stop()
