"""The foundation's promises on Redis, end to end: real ``celeriac -A jobs worker`` processes.

Each test gets its own ``redis-server``; fault tests kill it, or the workers, on purpose. Runs are
counted by the ``counted`` tasks of ``tests/apps/jobs.py``, which append one line per run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from celeriac import Celeriac, TaskRevokedError, states
from celeriac.exceptions import PublishError
from support.processes import WorkerProcess, count_runs, run_cli
from support.redis_server import RedisServer
from support.waiting import wait_for


def _kill_all(worker: WorkerProcess) -> None:
    """SIGKILL the worker and its pool children at once, as a power cut would."""
    for pid in [*worker.children(), worker.pid]:
        os.kill(pid, signal.SIGKILL)
    worker.wait(10)


def _runs(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _runs_reach(path: Path, count: int) -> Callable[[], bool]:
    return lambda: _runs(path) >= count


# -- the basics ----------------------------------------------------------------------------------


def test_results_failures_retries_and_revocations(redis_client: Celeriac, redis_url: str) -> None:
    revoked = redis_client.send_task("jobs.add", (0, 0), countdown=1)
    revoked.revoke()
    with WorkerProcess(redis_url, "-c", "2") as worker:
        assert redis_client.send_task("jobs.add", (2, 2)).get(timeout=10) == 4
        with pytest.raises(KeyError, match="no such thing"):
            redis_client.send_task("jobs.fails").get(timeout=10)
        assert redis_client.send_task("jobs.flaky", (2,)).get(timeout=10) == 2
        with pytest.raises(TaskRevokedError):
            revoked.get(timeout=10)
        assert f"broker {redis_url}" in worker.output
        # The revoked message is due a second after it was sent; then it is acked unrun.
        queue = redis_client.broker.queue_lengths
        assert wait_for(lambda: queue(["celeriac"]) == {"celeriac": 0}, 5), worker.output


def test_priorities_and_queues(redis_client: Celeriac, redis_url: str) -> None:
    low = [redis_client.send_task("jobs.whose_pid", priority=0) for _ in range(3)]
    high = redis_client.send_task("jobs.whose_pid", priority=9)
    other = redis_client.send_task("jobs.add", (1, 1), queue="other")
    with WorkerProcess(redis_url, "-c", "1", "-Q", "celeriac"):
        for result in [high, *low]:
            result.get(timeout=10)
        assert other.state == states.PENDING
    date = {r: r.date_done for r in [high, *low]}
    first = date[high]
    assert first is not None and all((d := date[r]) is not None and first <= d for r in low)
    assert redis_client.broker.queue_lengths(["other"]) == {"other": 1}


def test_purge_from_the_command_line(redis_client: Celeriac, redis_url: str) -> None:
    for _ in range(3):
        redis_client.send_task("jobs.add", (1, 2))
    out = run_cli(redis_url, "-A", "jobs", "purge", "-f")
    assert out.returncode == 0, out.stderr
    assert redis_client.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


# -- faults --------------------------------------------------------------------------------------


def test_delay_against_a_stopped_redis_raises_within_the_timeout(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    url = server.url()
    server.kill()
    app = Celeriac("client", broker=url, broker_publish_timeout=2)
    started = time.monotonic()
    with pytest.raises(PublishError, match="not enqueued") as raised:
        app.send_task("jobs.add", (1, 2))
    assert time.monotonic() - started <= 2.5
    assert "unreachable" in str(raised.value)
    server.close()


def test_two_thousand_tasks_survive_three_worker_kills(
    redis_client: Celeriac, redis_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    results = [redis_client.send_task("jobs.counted", (str(runs), 0.004)) for _ in range(2000)]
    for _ in range(3):
        worker = WorkerProcess(redis_url, "-c", "2", CELERIAC_TEST_LEASE="2").start()
        try:
            assert wait_for(_runs_reach(runs, _runs(runs) + 150), 30), worker.output
            _kill_all(worker)
        finally:
            worker.stop()
    with WorkerProcess(redis_url, "-c", "2", CELERIAC_TEST_LEASE="2"):
        for result in results:
            result.get(timeout=60)
    records = redis_client.backend.get_many([r.id for r in results])
    assert len(records) == 2000
    assert {record.state for record in records.values()} == {states.SUCCESS}
    counts = count_runs(runs)
    assert set(counts) == {r.id for r in results}  # none lost
    # Run twice only what was in a process at a kill, whose outcome was not yet recorded: at
    # most 2 per process (the running task and the next one, taken from its mailbox), 2
    # processes, 3 kills.
    assert sum(counts.values()) - 2000 <= 12
    assert redis_client.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    assert redis_client.broker.dead_letters() == []


def test_redis_restarted_with_aof_loses_no_acknowledged_publish(
    aof_server: RedisServer, tmp_path: Path
) -> None:
    url = aof_server.url()
    client = Celeriac("client", broker=url)
    acknowledged: list[str] = []
    failed: list[Exception] = []
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            try:
                acknowledged.append(client.send_task("jobs.add", (1, 1)).id)
            except PublishError as exc:  # within the 10 s timeout, Redis is back: none expected
                failed.append(exc)
            time.sleep(0.002)

    with WorkerProcess(url, "-c", "2", CELERIAC_TEST_LEASE="5") as worker:
        publisher = threading.Thread(target=publish)
        publisher.start()
        try:
            assert wait_for(lambda: len(acknowledged) >= 200, 20)
            aof_server.kill()
            time.sleep(1.5)
            aof_server.start()
            back = time.monotonic()
            probe = client.send_task("jobs.add", (20, 22))
            assert probe.get(timeout=10) == 42
            resumed_after = time.monotonic() - back
            assert wait_for(lambda: len(acknowledged) >= 400, 20)
        finally:
            stop.set()
            publisher.join(15)
        records = {}
        assert wait_for(
            lambda: (
                len(records.update(client.backend.get_many(acknowledged)) or records)
                == len(acknowledged)
            ),
            30,
        ), worker.output
    assert failed == []
    assert {r.state for r in records.values()} == {states.SUCCESS}
    assert resumed_after < 5.0
    assert client.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    client.close()


def test_a_long_task_and_a_countdown_under_a_short_lease_each_run_once(
    redis_client: Celeriac, redis_url: str, tmp_path: Path
) -> None:
    # The task outlives three leases, and the countdown is longer than one: the other worker,
    # idle meanwhile, would run the task again if its lease were not kept, and would run the
    # countdown early if it were handed out before its time. A 2 s lease is renewed every
    # 2/3 s, which a slow day still manages.
    lease, task_seconds, countdown = 2.0, 7.0, 5.0
    long_runs, delayed_runs = tmp_path / "long", tmp_path / "delayed"
    with (
        WorkerProcess(redis_url, "-c", "1", "-n", "one@%h", CELERIAC_TEST_LEASE=str(lease)),
        WorkerProcess(redis_url, "-c", "1", "-n", "two@%h", CELERIAC_TEST_LEASE=str(lease)),
    ):
        long = redis_client.send_task("jobs.counted", (str(long_runs), task_seconds))
        sent = time.time()  # before sending: the countdown cannot end before sent + countdown
        delayed = redis_client.send_task("jobs.counted", (str(delayed_runs),), countdown=countdown)
        delayed.get(timeout=countdown + 20)
        long.get(timeout=task_seconds + 20)
    assert count_runs(long_runs) == {long.id: 1}
    assert count_runs(delayed_runs) == {delayed.id: 1}
    # Not early: the task (which takes no time) was recorded a countdown after it was sent.
    assert delayed.date_done is not None
    assert delayed.date_done.timestamp() >= sent + countdown - 0.05
    assert redis_client.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


def test_frozen_worker_cannot_overwrite_or_ack_what_another_worker_took(
    redis_client: Celeriac, redis_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    frozen = WorkerProcess(redis_url, "-c", "1", "-n", "frozen@%h", CELERIAC_TEST_LEASE="2")
    frozen.start()
    try:
        result = redis_client.send_task("jobs.counted", (str(runs), 6.0))
        assert wait_for(runs.exists, 10), frozen.output
        frozen.signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        with WorkerProcess(
            redis_url, "-c", "1", "-n", "rescuer@%h", CELERIAC_TEST_LEASE="2"
        ) as rescuer:
            assert wait_for(lambda: count_runs(runs).get(result.id) == 2, 15), rescuer.output
            time.sleep(max(0.0, stopped_at + 6.5 - time.monotonic()))
            frozen.signal(signal.SIGCONT)
            # The frozen worker's child finished meanwhile; its main process now sees the
            # outcome and must discard it: the rescuer still holds the message.
            frozen.wait_for("lease was lost", 10)
            assert result.state == states.PENDING
            assert redis_client.broker.queue_lengths(["celeriac"]) == {"celeriac": 1}
            assert result.get(timeout=30)["hostname"].startswith("rescuer@")
    finally:
        frozen.stop()
    assert count_runs(runs) == {result.id: 2}
    assert redis_client.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
