"""Celery's worker and logging signals with a real worker subprocess (tests/apps/signalled.py):
``task_received``, ``task_unknown``, ``task_rejected``, ``connect(sender=...)``, and the command
line's ``setup_logging`` / ``after_setup_logger`` / ``after_setup_task_logger``."""

from __future__ import annotations

from pathlib import Path

import pytest

from celeriac import Celeriac, NotRegistered
from celeriac.brokers.base import Broker
from celeriac.message import Message
from support.processes import WorkerProcess
from support.waiting import wait_for


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def has(path: Path, start: str) -> bool:
    return any(line.startswith(start) for line in lines(path))


def test_worker_signals(tmp_path: Path, sqlite_url: str) -> None:
    log = tmp_path / "signals.log"
    client = Celeriac("client", broker=sqlite_url)
    worker = WorkerProcess(
        sqlite_url, "-P", "threads", app="signalled", CELERIAC_TEST_HOOK_LOG=str(log)
    )
    with worker:
        added = client.send_task("signalled.add", (2, 3))
        assert added.get(timeout=30) == 5
        assert client.send_task("signalled.other").get(timeout=30) == "other"
        unknown = client.send_task("signalled.nope")
        with pytest.raises(NotRegistered):
            unknown.get(timeout=30)
        broker: Broker = client.broker
        raw_broker_publish_garbage(broker)
        assert wait_for(lambda: has(log, "task_rejected:MalformedMessage"), timeout=30)
    seen = lines(log)
    assert f"task_received:signalled.add {added.id}" in " ".join(seen)
    assert any(
        line.startswith(f"task_unknown:signalled.nope:NotRegistered {unknown.id}") for line in seen
    )
    # connect(sender='signalled.add'): only add's successes, not other's
    successes = [line.split()[0] for line in seen if line.startswith("task_success")]
    assert successes and set(successes) == {"task_success:signalled.add:5"}
    # the command line configured logging itself, then said so
    assert has(log, "after_setup_logger:root:INFO")
    assert has(log, "after_setup_task_logger:celeriac.task:INFO")
    assert not has(log, "setup_logging")


def raw_broker_publish_garbage(broker: Broker) -> None:
    """Bytes that are no celeriac message, straight into the default queue (as
    tests/test_hostile_messages.py writes them)."""
    carrier = Message(id="garbage", task="signalled.add", body=b"")
    carrier.__dict__["_encoded"] = b"this is not a message"  # the broker stores these bytes
    broker.publish(carrier)


def test_a_setup_logging_receiver_takes_over_logging(tmp_path: Path, sqlite_url: str) -> None:
    log = tmp_path / "signals.log"
    env = {"CELERIAC_TEST_HOOK_LOG": str(log), "CELERIAC_TEST_OWN_LOGGING": "1"}
    client = Celeriac("client", broker=sqlite_url)
    with WorkerProcess(sqlite_url, "-P", "threads", app="signalled", **env) as worker:
        assert client.send_task("signalled.add", (1, 1)).get(timeout=30) == 2
        worker.wait_for("OWN ", timeout=10)  # its own format: the command configured none
    assert has(log, "setup_logging:INFO:None:False")
    assert not has(log, "after_setup_logger")
    assert not has(log, "after_setup_task_logger")
