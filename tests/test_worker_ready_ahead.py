"""A worker keeps one message ready while tasks are short, and hands it back when it waits."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from celeriac import Celeriac
from celeriac.worker import Worker, WorkerOptions
from celeriac.worker.dispatch import HOLD_LIMIT


def make_app() -> Celeriac:
    name = f"ready-{uuid.uuid4().hex[:8]}"
    return Celeriac(name, broker=f"memory://{name}")


@contextmanager
def running(app: Celeriac, hostname: str) -> Iterator[Worker]:
    worker = Worker(
        app,
        WorkerOptions(
            concurrency=1, pool="threads", hostname=hostname, install_signal_handlers=False
        ),
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(10)


def test_a_message_kept_ready_goes_back_when_a_long_task_holds_the_process() -> None:
    app = make_app()

    @app.task(bind=True)
    def work(self, seconds: float) -> dict[str, object]:  # type: ignore[no-untyped-def]
        time.sleep(seconds)
        return {"worker": self.request.hostname, "attempt": self.request.delivery_info["attempt"]}

    with running(app, "first"):
        for _ in range(5):  # tasks are short: the worker starts keeping one message ready
            work.delay(0).get(timeout=10)
        long = work.delay(3.0)
        time.sleep(0.3)
        waiting = work.delay(0)  # kept ready by "first", whose only process is busy
        time.sleep(0.2)
        with running(app, "second"):
            started = time.monotonic()
            result = waiting.get(timeout=10)
            handed_over_after = time.monotonic() - started
        assert long.get(timeout=10)["worker"] == "first"
    assert result["worker"] == "second"
    assert result["attempt"] == 1  # handing back is not counted against the message
    assert handed_over_after < HOLD_LIMIT + 1.0


def test_no_message_is_kept_ready_for_long_tasks() -> None:
    app = make_app()

    @app.task(bind=True)
    def slow(self, seconds: float) -> str:  # type: ignore[no-untyped-def]
        time.sleep(seconds)
        return str(self.request.hostname)

    with running(app, "busy"):
        slow.delay(0.06).get(timeout=10)  # the worker has seen a task longer than 50 ms
        slow.delay(3.0)
        queued = [slow.delay(0) for _ in range(3)]
        time.sleep(0.3)
        with running(app, "idle"):
            started = time.monotonic()
            ran_on = [r.get(timeout=10) for r in queued]
            elapsed = time.monotonic() - started
    assert ran_on == ["idle"] * 3
    assert elapsed < HOLD_LIMIT / 2  # nothing was held back by the busy worker
