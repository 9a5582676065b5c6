"""A worker keeps one message ready while tasks are short, and hands it back when it waits.

The "long" tasks here block until the test lets them go, and the broker notes which worker
fetched which task, so the tests wait for what happened rather than sleep for it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager

from celeriac import Celeriac
from celeriac.brokers.base import Delivery
from celeriac.brokers.memory import MemoryBroker
from celeriac.message import Message
from celeriac.worker import Worker
from celeriac.worker.dispatch import HOLD_LIMIT
from support.waiting import wait_for
from support.workers import worker_running

BLOCKED_AT_MOST = 10.0  # seconds a blocked task waits for the test to let it go


class FetchLog(MemoryBroker):
    """An in-memory broker that notes, in order, which worker fetched which task."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.fetches: list[tuple[str, str]] = []  # (worker, task id)

    def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, consumer: str, timeout: float
    ) -> list[Delivery]:
        deliveries = super().fetch(queues, limit, lease=lease, consumer=consumer, timeout=timeout)
        self.fetches.extend((consumer, Message.decode(d.body).id) for d in deliveries)
        return deliveries

    def fetched_by(self, task_id: str) -> list[str]:
        """The workers that fetched ``task_id``, in order."""
        return [worker for worker, fetched in self.fetches if fetched == task_id]


def make_app() -> tuple[Celeriac, FetchLog]:
    name = f"ready-{uuid.uuid4().hex[:8]}"
    broker = FetchLog(name)
    return Celeriac(name, broker=broker), broker


def running(app: Celeriac, hostname: str) -> AbstractContextManager[Worker]:
    return worker_running(app, concurrency=1, pool="threads", hostname=hostname)


def test_a_message_kept_ready_goes_back_when_a_long_task_holds_the_process() -> None:
    app, broker = make_app()
    started, release = threading.Event(), threading.Event()

    @app.task(bind=True)
    def work(self, hold: bool = False) -> dict[str, object]:  # type: ignore[no-untyped-def]
        if hold:
            started.set()
            release.wait(BLOCKED_AT_MOST)
        return {"worker": self.request.hostname, "attempt": self.request.delivery_info["attempt"]}

    with running(app, "first"):
        try:
            # Tasks are short: the worker starts keeping one message ready (twenty, so that
            # a slow first run on a slow day weighs little in its average).
            for _ in range(20):
                work.delay().get(timeout=10)
            long = work.delay(hold=True)
            assert started.wait(10)
            waiting = work.delay()
            # Kept ready by "first", whose only process is busy until the end of the test.
            assert wait_for(lambda: broker.fetched_by(waiting.id) == ["first"], 10), broker.fetches
            with running(app, "second"):
                began = time.monotonic()
                result = waiting.get(timeout=10)
                handed_over_after = time.monotonic() - began
        finally:
            release.set()
        assert long.get(timeout=10)["worker"] == "first"
    assert result["worker"] == "second"
    assert broker.fetched_by(waiting.id) == ["first", "second"]
    assert result["attempt"] == 1  # handing back is not counted against the message
    assert handed_over_after < HOLD_LIMIT + 1.0


def test_no_message_is_kept_ready_for_long_tasks() -> None:
    app, broker = make_app()
    started, release = threading.Event(), threading.Event()

    @app.task(bind=True)
    def slow(self, seconds: float = 0.0, hold: bool = False) -> str:  # type: ignore[no-untyped-def]
        if hold:
            started.set()
            release.wait(BLOCKED_AT_MOST)
        time.sleep(seconds)
        return str(self.request.hostname)

    with running(app, "busy"):
        try:
            slow.delay(0.06).get(timeout=10)  # the worker has seen a task longer than 50 ms
            slow.delay(hold=True)
            assert started.wait(10)
            queued = [slow.delay() for _ in range(3)]
            # Nothing to wait for: a worker keeping one ready would take it at once (its fetch
            # waits on the broker); this leaves it time to, on a slow day too.
            time.sleep(0.3)
            with running(app, "idle"):
                ran_on = [r.get(timeout=10) for r in queued]
        finally:
            release.set()
    assert ran_on == ["idle"] * 3
    assert [broker.fetched_by(r.id) for r in queued] == [["idle"]] * 3  # "busy" held none back
