"""The history indexed from the event log in pieces (``backends/history_log.py``): a task's
events split over frames and steps, frames that are not, and two readers indexing one store at
once (each event indexed once). Every backend, through the ``backend`` fixture; the readers,
SQLite and Redis."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from celeriac.backends import history_log
from celeriac.backends.base import ResultBackend
from celeriac.backends.history_log import EventLog
from celeriac.backends.sqlite import SqliteBackend
from celeriac.backends.sqlite_history import history_path
from celeriac.event_rows import encode, frame_events, row_of
from celeriac.history import RECEIVED, STARTED, SUCCEEDED, TaskEvent, TaskQuery
from support.clock import FakeClock
from support.stores import redis_test_options, redis_test_url

T0 = 1_000_000.0  # FakeClock's start


def lifecycle(task_id: str, at: float) -> list[TaskEvent]:
    fields = {"name": "jobs.add", "args": f"[{task_id!r}]", "kwargs": "{}", "queue": "q"}
    return [
        TaskEvent(RECEIVED, task_id, at, "w1", fields),
        TaskEvent(STARTED, task_id, at + 0.5, "w1"),
        TaskEvent(
            SUCCEEDED, task_id, at + 1, "w1", {"result": f'"done {task_id}"', "runtime": 0.5}
        ),
    ]


def test_a_task_written_in_pieces_is_one_entry(backend: ResultBackend) -> None:
    received, started, succeeded = lifecycle("t1", T0)
    for event in (received, started, succeeded):
        backend.record_events([event], retention=60)

    entry = backend.history_task("t1")
    assert entry is not None
    assert (entry.state, entry.name, entry.worker, entry.seen) == ("SUCCESS", "jobs.add", "w1", T0)
    assert [e.type for e in entry.events] == [RECEIVED, STARTED, SUCCEEDED]
    assert backend.history_counts() == {"SUCCESS": {"jobs.add": 1}}
    # Text written by two writes is found by either part: args (first), result (last).
    for text in ("['t1']", "done t1"):
        page = backend.history_tasks(TaskQuery(text=text))
        assert [t.task_id for t in page.tasks] == ["t1"], text
    for state, total in (("SUCCESS", 1), ("RECEIVED", 0), ("STARTED", 0)):
        assert backend.history_tasks(TaskQuery(state=state)).total == total


def test_a_log_indexed_in_small_steps_keeps_every_task_and_its_timeline(
    backend: ResultBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_log, "STEP_EVENTS", 2)  # a task's events split over steps
    events = [e for n in range(120) for e in lifecycle(f"t{n:03}", T0 + n)]
    for start in range(0, len(events), 50):  # frames that cut tasks in two, too
        backend.record_events(events[start : start + 50], retention=None)

    page = backend.history_tasks(TaskQuery(limit=5, name="jobs.add", worker="w1"))
    assert page.total == 120
    assert [t.task_id for t in page.tasks] == ["t119", "t118", "t117", "t116", "t115"]
    entry = backend.history_task("t007")
    assert entry is not None and len(entry.events) == 3 and entry.result == '"done t007"'
    assert backend.history_counts() == {"SUCCESS": {"jobs.add": 120}}


def test_a_frame_that_is_not_one_is_skipped_and_the_rest_indexed(
    backend: ResultBackend, caplog: pytest.LogCaptureFixture
) -> None:
    good = encode([row_of(e) for e in lifecycle("t1", T0)])
    backend.append_events("w1", [b"not json", good, b'[["too short"]]'], retention=None)

    entry = backend.history_task("t1")
    assert entry is not None and entry.state == "SUCCESS" and len(entry.events) == 3
    assert backend.history_counts() == {"SUCCESS": {"jobs.add": 1}}
    assert "not a frame of task events" in caplog.text


@pytest.fixture(params=["sqlite", "redis"])
def twins(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[tuple[ResultBackend, ResultBackend]]:
    """Two backends on one store, as two dashboards (or a dashboard and a script) have."""
    make: Callable[[], ResultBackend]
    if request.param == "sqlite":
        make = lambda: SqliteBackend(str(tmp_path / "r.db"), clock=clock)  # noqa: E731
    else:
        from celeriac.backends.redis import RedisBackend

        options = redis_test_options()
        make = lambda: RedisBackend(redis_test_url(), options, clock=clock)  # noqa: E731
    one, two = make(), make()
    yield one, two
    one.close()
    two.close()


def test_a_step_from_a_position_another_reader_moved_writes_nothing(
    twins: tuple[ResultBackend, ResultBackend],
) -> None:
    one, two = twins
    one.record_events(lifecycle("t1", T0), retention=None)
    log = one.history
    assert isinstance(log, EventLog)
    position = log.index_position()
    batches = log.batches_after(position, 10)
    events = [e for b in batches for e in frame_events(b.frame, b.hostname)]

    assert two.index_events() == 3  # the other reader was first
    assert log.index(position, batches, events) is False
    entry = one.history_task("t1")
    assert entry is not None and len(entry.events) == 3  # not six


def test_two_readers_indexing_at_once_index_every_event_once(
    twins: tuple[ResultBackend, ResultBackend], monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    monkeypatch.setattr(history_log, "STEP_EVENTS", 9)  # many small steps, to race on
    one, two = twins
    tasks = 300
    stop = threading.Event()

    def index(backend: ResultBackend) -> None:
        while not stop.is_set():
            backend.index_events()

    readers = [threading.Thread(target=index, args=(b,)) for b in twins]
    for reader in readers:
        reader.start()
    try:
        for n in range(0, tasks, 5):
            batch = [e for k in range(n, n + 5) for e in lifecycle(f"t{k:03}", T0 + k)]
            one.record_events(batch, retention=None)
    finally:
        stop.set()
        for reader in readers:
            reader.join()

    assert two.history_counts() == {"SUCCESS": {"jobs.add": tasks}}
    assert one.history_tasks(TaskQuery(state="SUCCESS")).total == tasks
    for task_id in ("t000", "t123", f"t{tasks - 1:03}"):
        entry = two.history_task(task_id)
        assert entry is not None and [e.type for e in entry.events] == [
            RECEIVED,
            STARTED,
            SUCCEEDED,
        ]
    clock.advance(tasks + 10)
    succeeded = sum(b["succeeded"] for b in one.history_series(T0, 60.0))
    assert succeeded == tasks


def test_a_read_that_cannot_index_answers_with_what_is_indexed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = SqliteBackend(str(tmp_path / "r.db"))
    try:
        backend.record_events(lifecycle("t1", T0), retention=None)
        assert backend.history_tasks(TaskQuery()).total == 1
        backend.record_events(lifecycle("t2", T0 + 1), retention=None)
        holder = sqlite3.connect(history_path(str(tmp_path / "r.db")), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # a long write elsewhere holds the history's lock
        try:
            began = time.monotonic()
            page = backend.history_tasks(TaskQuery())
            assert time.monotonic() - began < 10  # not the 30 s of a write's lock wait
            assert [t.task_id for t in page.tasks] == ["t1"]
            assert "could not be indexed" in caplog.text
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert [t.task_id for t in backend.history_tasks(TaskQuery()).tasks] == ["t2", "t1"]
    finally:
        backend.close()


def test_the_lag_says_how_long_the_oldest_unindexed_event_has_waited(
    backend: ResultBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert backend.history_lag() == 0.0
    backend.record_events(lifecycle("t1", T0), retention=None)
    later = time.time() + 30  # as if nobody had read the history for half a minute
    monkeypatch.setattr(time, "time", lambda: later)
    if isinstance(backend.history, EventLog):  # memory: indexed as it is appended
        assert 29 <= backend.history_lag() <= 60
    backend.index_events()
    assert backend.history_lag() == 0.0
