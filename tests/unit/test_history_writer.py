"""The worker's history writer (``worker/history_writer.py``) on a real (memory) backend: that
it appends what it is given, a failed append is tried again, and ``stop`` appends everything.
Real workers writing through it: tests/test_events.py."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from celeriac.backends.memory import MemoryBackend
from celeriac.event_rows import EventRow, encode
from celeriac.exceptions import BackendError
from celeriac.history import RECEIVED, STARTED, SUCCEEDED, TaskQuery
from celeriac.worker import history_writer
from celeriac.worker.history_writer import HistoryWriter
from support.waiting import wait_for


def _rows(task_id: str, at: float, *, ended: bool = True) -> list[EventRow]:
    rows = [
        [RECEIVED, task_id, at, {"name": "jobs.add", "body": "[[1], {}]"}],
        [STARTED, task_id, at + 0.001, None],
    ]
    if ended:
        rows.append([SUCCEEDED, task_id, at + 0.002, {"result": "1", "runtime": 0.001}])
    return rows


def _appender(backend: MemoryBackend) -> history_writer.Write:
    return lambda frames: backend.append_events("w1", frames, retention=None)


def test_the_thread_appends_and_stop_appends_what_is_left() -> None:
    backend = MemoryBackend("history-writer-test")
    writer = HistoryWriter(_appender(backend), "h", 0.05)
    writer.start()
    now = time.time()
    writer.submit_rows(_rows("done", now))
    assert wait_for(lambda: backend.history_task("done") is not None, 5)
    writer.interval = 3600.0  # what comes now waits for stop
    time.sleep(0.1)
    writer.submit_rows(_rows("running", now, ended=False))
    writer.stop()
    running = backend.history_task("running")
    assert running is not None and running.state == "STARTED"
    done = backend.history_task("done")
    assert done is not None and done.args == "[1]" and done.worker == "w1"
    assert writer.pending == 0


def test_a_failed_append_is_tried_again() -> None:
    backend = MemoryBackend("history-writer-retry")
    calls: list[int] = []

    def append(frames: Sequence[bytes]) -> None:
        calls.append(len(frames))
        if len(calls) == 1:
            raise BackendError("down for a moment")
        backend.append_events("w1", frames, retention=None)

    writer = HistoryWriter(append, "h")
    writer.submit_frames([encode(_rows("a", 1.0)), encode(_rows("b", 2.0))])
    writer.flush()
    assert writer.pending == 2 and backend.history_task("a") is None
    writer.flush()
    assert writer.pending == 0
    assert backend.history_tasks(TaskQuery()).total == 2
    assert calls == [2, 2]


def test_what_waits_too_long_is_dropped_oldest_first(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    frames = [encode(_rows(f"t{n}", float(n))) for n in range(10)]
    monkeypatch.setattr(history_writer, "MAX_PENDING_BYTES", sum(map(len, frames[:4])))
    appended: list[bytes] = []

    def append(new: Sequence[bytes]) -> None:
        if not appended:
            raise BackendError("down")
        appended.extend(new)

    writer = HistoryWriter(append, "h")
    writer.submit_frames(frames)
    writer.flush()  # fails: only the newest four stay
    assert writer.pending == 4 and "dropping 6 frames of task events" in caplog.text
    appended.append(b"")  # the backend is back
    writer.flush()
    assert appended[1:] == frames[6:]
