"""The worker keeps outcomes it cannot record and records them once the store is back."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence

import pytest

from celeriac import Celeriac
from celeriac.backends.base import ResultRecord
from celeriac.backends.memory import MemoryBackend
from celeriac.brokers.base import Delivery
from celeriac.brokers.memory import MemoryBroker
from celeriac.exceptions import BackendError
from celeriac.testing import in_process_worker
from support.workers import worker_running


class OutageBackend(MemoryBackend):
    """A memory backend that refuses every store while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__(f"outage-{uuid.uuid4().hex}")
        self.down = threading.Event()
        self.refused = 0

    def store_many(self, records: Sequence[ResultRecord], *, expires: float | None) -> list[bool]:
        if self.down.is_set():
            self.refused += 1
            raise BackendError("backend unreachable (test outage)")
        return super().store_many(records, expires=expires)


def test_outcomes_survive_a_backend_outage() -> None:
    backend = OutageBackend()
    app = Celeriac("outage", broker=MemoryBroker(f"outage-{uuid.uuid4().hex}"), backend=backend)
    runs: list[int] = []

    @app.task
    def add(x: int, y: int) -> int:
        runs.append(x)
        return x + y

    with worker_running(app, concurrency=2, pool="threads"):
        backend.down.set()
        results = [add.delay(i, i) for i in range(10)]
        deadline = time.monotonic() + 10
        while backend.refused < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert backend.refused >= 2
        assert all(r.state == "PENDING" for r in results)
        backend.down.clear()
        assert [r.get(timeout=10) for r in results] == [2 * i for i in range(10)]
    assert sorted(runs) == list(range(10))
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


class RefusingBroker(MemoryBroker):
    """A memory broker whose acks all find the lease gone (as when it ran out meanwhile)."""

    def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        return [False] * len(deliveries)


def test_a_settle_the_broker_refuses_is_not_counted_or_logged_as_done(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Celeriac("refused", broker=RefusingBroker(f"refused-{uuid.uuid4().hex}"))

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 2)
    worker = in_process_worker(app)
    try:
        with caplog.at_level(logging.INFO, logger="celeriac.worker"):
            assert worker.drain() == 0  # nothing settled here
    finally:
        worker.close()
    assert "its lease ran out meanwhile" in caplog.text
    assert "succeeded" not in caplog.text
    assert result.get(timeout=1) == 4  # the outcome was stored first: another run keeps it
