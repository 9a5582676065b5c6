"""The AMQP broker end to end: real ``celeriac -A rabbit_jobs worker`` processes on the RabbitMQ
of the machine, results in a throw-away Redis. Each test has its own namespace of queue names,
deleted afterwards (``conftest.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from celeriac import Celeriac, TaskRevokedError, chain, chord, group, states
from celeriac.brokers.amqp_link import amqp
from celeriac.exceptions import ConfigurationError, PublishError
from support.processes import WorkerProcess, count_runs
from support.rabbitmq import VHOST
from support.redis_server import free_port
from support.waiting import wait_for

Workers = Callable[..., WorkerProcess]


def _runs(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _more_runs(path: Path, count: int) -> Callable[[], bool]:
    target = _runs(path) + count
    return lambda: _runs(path) >= target


def _kill_all(worker: WorkerProcess) -> None:
    """SIGKILL the worker and its pool children at once, as a power cut would."""
    for pid in [*worker.children(), worker.pid]:
        os.kill(pid, signal.SIGKILL)
    worker.wait(10)


def test_results_retries_countdowns_priorities_and_revokes(
    rabbit_client: Celeriac, rabbit_worker: Workers, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    revoked = rabbit_client.send_task("rabbit_jobs.add", (0, 0), countdown=1)
    revoked.revoke()
    with rabbit_worker("-c", "2") as worker:
        assert rabbit_client.send_task("rabbit_jobs.add", (2, 2)).get(timeout=10) == 4
        assert rabbit_client.send_task("rabbit_jobs.flaky", (2,)).get(timeout=15) == 2
        sent = time.time()
        later = rabbit_client.send_task("rabbit_jobs.counted", (str(runs),), countdown=1.5)
        later.get(timeout=20)
        with pytest.raises(TaskRevokedError):
            revoked.get(timeout=10)
        assert "amqp://guest:***@" in worker.output
        # The revoked message is due a second after it was sent; then it is acked unrun.
        queue = rabbit_client.broker.queue_lengths
        assert wait_for(lambda: queue(["celeriac"]) == {"celeriac": 0}, 10), worker.output
    assert count_runs(runs) == {later.id: 1}
    assert later.date_done is not None and later.date_done.timestamp() >= sent + 1.5 - 0.05


def test_a_chord_a_chain_and_remote_control(
    rabbit_client: Celeriac, rabbit_worker: Workers
) -> None:
    add = rabbit_client.signature("rabbit_jobs.add")
    total = rabbit_client.signature("rabbit_jobs.total")
    with rabbit_worker("-c", "2", "-n", "rabbit@%h"):
        header = group(add.clone((n, n)) for n in range(5))
        assert chord(header, total).apply_async().get(timeout=20) == 20
        assert chain(add.clone((1, 2)), add.clone((10,))).apply_async().get(timeout=20) == 13
        replies = rabbit_client.control.ping(timeout=5)
        assert [next(iter(reply.values())) for reply in replies] == [{"ok": "pong"}]
        assert next(iter(replies[0])).startswith("rabbit@")


def test_priorities_are_honoured(rabbit_client: Celeriac, rabbit_worker: Workers) -> None:
    low = [rabbit_client.send_task("rabbit_jobs.add", (0, n), priority=0) for n in range(3)]
    high = rabbit_client.send_task("rabbit_jobs.add", (1, 1), priority=9)
    with rabbit_worker("-c", "1"):
        for result in [high, *low]:
            result.get(timeout=10)
    first = high.date_done
    assert first is not None
    assert all((d := r.date_done) is not None and first <= d for r in low)


def test_no_backend_on_an_amqp_broker_says_which_to_use(amqp_vhost_url: str) -> None:
    app = Celeriac("nobackend", broker=amqp_vhost_url)
    with pytest.raises(ConfigurationError, match="redis://") as raised:
        _ = app.backend
    assert "guest:***@" in str(raised.value) and "sqlite://" in str(raised.value)


def test_delay_while_rabbitmq_is_unreachable_raises_within_the_publish_timeout() -> None:
    app = Celeriac("down", broker=f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    app.conf.broker_publish_timeout = 1.0
    started = time.monotonic()
    with pytest.raises(PublishError, match="not enqueued") as raised:
        app.send_task("rabbit_jobs.add", (1, 2))
    assert time.monotonic() - started <= 1.0 + 2.0  # the timeout, and a noisy machine's slack
    assert "unreachable" in str(raised.value) and "guest:***@" in str(raised.value)


def test_a_queue_declared_with_other_arguments_is_refused_at_once(
    rabbit_client: Celeriac, amqp_namespace: str
) -> None:
    connection = amqp.Connection(
        "127.0.0.1:5672", userid="guest", password="guest", virtual_host=VHOST
    )
    connection.connect()
    try:  # as Celery declares it: no x-max-priority, no dead-letter exchange
        connection.channel().queue_declare(
            f"{amqp_namespace}plain", durable=True, auto_delete=False
        )
    finally:
        connection.close()
    with pytest.raises(PublishError, match="refused it: PreconditionFailed"):
        rabbit_client.send_task("rabbit_jobs.add", (1, 2), queue="plain")


def test_two_thousand_tasks_survive_three_worker_kills(
    rabbit_client: Celeriac, rabbit_worker: Workers, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    results = [
        rabbit_client.send_task("rabbit_jobs.counted", (str(runs), 0.004)) for _ in range(2000)
    ]
    for _ in range(3):
        worker = rabbit_worker("-c", "2", CELERIAC_TEST_LEASE=2).start()
        try:
            assert wait_for(_more_runs(runs, 150), 30), worker.output
            _kill_all(worker)
        finally:
            worker.stop()
    with rabbit_worker("-c", "2", CELERIAC_TEST_LEASE=2) as worker:
        for result in results:
            result.get(timeout=60)
        # A run whose ack the kill cut off comes back (and runs again): wait for the last.
        queue = rabbit_client.broker.queue_lengths
        assert wait_for(lambda: queue(["celeriac"]) == {"celeriac": 0}, 20), worker.output
    records = rabbit_client.backend.get_many([r.id for r in results])
    assert len(records) == 2000
    assert {record.state for record in records.values()} == {states.SUCCESS}
    counts = count_runs(runs)
    assert set(counts) == {r.id for r in results}  # none lost
    # Run twice only what was in a process at a kill, whose outcome was not yet recorded: at
    # most 2 per process (the running task and the next one), 2 processes, 3 kills.
    assert sum(counts.values()) - 2000 <= 12
    assert rabbit_client.broker.dead_letters() == []


def test_connections_closed_by_the_server_resume_and_lose_nothing(
    rabbit_client: Celeriac, rabbit_worker: Workers
) -> None:
    acknowledged: list[str] = []
    failed: list[Exception] = []
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            try:
                acknowledged.append(rabbit_client.send_task("rabbit_jobs.add", (1, 1)).id)
            except PublishError as exc:  # the publish reconnects within its timeout
                failed.append(exc)
            time.sleep(0.002)

    with rabbit_worker("-c", "2", CELERIAC_TEST_LEASE=5) as worker:
        publisher = threading.Thread(target=publish)
        publisher.start()
        try:
            assert wait_for(lambda: len(acknowledged) >= 200, 20)
            subprocess.run(
                ["rabbitmqctl", "-q", "close_all_connections", "-p", VHOST, "test: dropped"],
                check=True,
                capture_output=True,
            )
            closed = time.monotonic()
            probe = rabbit_client.send_task("rabbit_jobs.add", (20, 22))
            assert probe.get(timeout=10) == 42
            resumed_after = time.monotonic() - closed
            assert wait_for(lambda: len(acknowledged) >= 400, 20)
        finally:
            stop.set()
            publisher.join(15)
        records: dict[str, object] = {}

        def all_done() -> bool:
            records.update(rabbit_client.backend.get_many(acknowledged))
            return len(records) == len(acknowledged)

        assert wait_for(all_done, 30), worker.output
        # What the dropped connection held came back, and is run (again, at least once).
        queue = rabbit_client.broker.queue_lengths
        assert wait_for(lambda: queue(["celeriac"]) == {"celeriac": 0}, 20), worker.output
    assert failed == []
    assert {r.state for r in records.values()} == {states.SUCCESS}  # type: ignore[attr-defined]
    assert resumed_after < 5.0
