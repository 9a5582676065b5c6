"""The worker's history writer (``worker/history_writer.py``) on a real (memory) backend: what
it holds back, how it cuts a write, that a failed write is tried again, and that ``stop``
writes everything. Real workers writing through it: tests/test_events.py."""

from __future__ import annotations

import time
from collections.abc import Sequence

from celeriac.backends.memory import MemoryBackend
from celeriac.exceptions import BackendError
from celeriac.history import RECEIVED, STARTED, SUCCEEDED, TaskEvent, TaskQuery
from celeriac.worker.history_writer import HistoryWriter, chunks, due
from support.waiting import wait_for


def _events(task_id: str, at: float, *, ended: bool = True) -> list[TaskEvent]:
    events = [
        TaskEvent(RECEIVED, task_id, at, "w1", {"name": "jobs.add"}),
        TaskEvent(STARTED, task_id, at + 0.001, "w1"),
    ]
    if ended:
        events.append(TaskEvent(SUCCEEDED, task_id, at + 0.002, "w1", {"result": "1"}))
    return events


def test_chunks_keep_a_tasks_events_together() -> None:
    events = [*_events("a", 1.0), *_events("b", 2.0)]
    events.insert(1, TaskEvent(RECEIVED, "c", 1.5, "w1"))  # interleaved, as a turn writes them
    parts = chunks(events, 2)
    assert [[e.task_id for e in part] for part in parts] == [
        ["a", "a", "a", "c"],
        ["b", "b", "b"],
    ]


def test_due_holds_only_a_running_tasks_young_events() -> None:
    now = time.time()
    events = [*_events("done", now), *_events("running", now, ended=False)]
    events += _events("old", now - 10, ended=False)
    ready, held = due(events, now)
    assert {e.task_id for e in ready} == {"done", "old"}
    assert {e.task_id for e in held} == {"running"}


def test_the_thread_writes_and_stop_writes_what_was_held() -> None:
    backend = MemoryBackend("history-writer-test")
    writer = HistoryWriter(lambda e: backend.record_events(e, retention=None), "h", "w", 0.05)
    writer.start()
    now = time.time()
    writer.submit([*_events("done", now), *_events("running", now, ended=False)])
    assert wait_for(lambda: backend.history_task("done") is not None, 5)
    writer.stop()
    running = backend.history_task("running")
    assert running is not None and running.state == "STARTED"
    assert writer.pending == 0


def test_a_failed_write_is_tried_again() -> None:
    backend = MemoryBackend("history-writer-retry")
    calls: list[int] = []

    def write(events: Sequence[TaskEvent]) -> None:
        calls.append(len(events))
        if len(calls) == 1:
            raise BackendError("down for a moment")
        backend.record_events(events, retention=None)

    writer = HistoryWriter(write, "h", "w")
    writer.submit(_events("a", 1.0))
    writer.flush()
    assert writer.pending == 3 and backend.history_task("a") is None
    writer.flush()
    assert writer.pending == 0
    assert backend.history_tasks(TaskQuery()).total == 1
    assert calls == [3, 3]
