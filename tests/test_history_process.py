"""The worker's task events process (``worker/history_process.py``): frames, the process on a
real backend, its fallback when it dies, and a real ``celeriac worker`` that has one."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from celeriac import Celeriac
from celeriac.event_rows import EventRow, decode, encode, frames
from celeriac.history import RECEIVED, STARTED, SUCCEEDED, TaskQuery
from celeriac.worker.history_process import PROCESS_NAME, HistoryProcess
from support.processes import WorkerProcess
from support.waiting import wait_for


def rows_of(task_id: str, at: float, size: int = 10) -> list[EventRow]:
    """A task's rows as a worker's main process records them."""
    body = "[[" + "1," * size + "1],{}]"
    return [
        [RECEIVED, task_id, at, {"name": "t.add", "body": body, "retries": 0, "queue": "q"}],
        [STARTED, task_id, at + 0.001, None],
        [SUCCEEDED, task_id, at + 0.002, {"result": "2", "runtime": 0.001}],
    ]


def gone(pid: int) -> bool:
    """The process exited (a zombie not reaped yet counts, once its last thread is gone too:
    until then its parent cannot reap it, and still sees it alive)."""
    try:
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
    except OSError:
        return True
    return status["State"].split()[0] == "Z" and int(status["Threads"]) <= 1


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Celeriac]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    app = Celeriac("events", broker=url, backend=url)
    yield app
    app.close()


def test_a_frame_gives_back_the_rows_it_was_made_of() -> None:
    rows = rows_of("a", 1.5)
    assert decode(encode(rows)) == rows
    for bad in (b'{"no": 1}', b"[[1, 2]]", b"not json"):
        with pytest.raises(ValueError, match="not a frame"):
            decode(bad)


def test_events_are_cut_into_frames_in_order_and_an_oversized_one_is_left_out() -> None:
    events = [e for n in range(50) for e in rows_of(f"t{n}", n, size=200)]
    cut = frames(events, limit=4096)
    assert len(cut) > 1 and all(len(frame) <= 4096 for frame, _ in cut)
    assert [e for frame, _ in cut for e in decode(frame)] == events
    assert sum(count for _, count in cut) == len(events)

    huge = rows_of("huge", 1.0, size=5000)[:1]
    cut = frames([*rows_of("a", 1.0), *huge, *rows_of("b", 2.0)], limit=4096)
    assert (b"", 1) in cut  # stands for the event left out
    assert sum(count for _, count in cut) == 7
    assert [r[1] for frame, _ in cut if frame for r in decode(frame)] == ["a"] * 3 + ["b"] * 3


def _write(app: Celeriac) -> Callable[[Sequence[bytes]], None]:
    """The backend call the worker's recorder makes."""
    return lambda frames: app.backend.append_events("w@h", frames, retention=None)


def test_the_events_process_writes_what_it_is_sent_and_stops_cleanly(app: Celeriac) -> None:
    history = HistoryProcess(_write(app), "history-test")
    history.start()
    try:
        pid = history.pid
        assert pid is not None
        assert Path(f"/proc/{pid}/comm").read_text().strip() == PROCESS_NAME  # once ready
        os.kill(pid, signal.SIGTERM)  # ignored: the worker decides when it stops
        os.kill(pid, signal.SIGINT)
        now = time.time()
        for n in range(400):
            history.submit_rows(rows_of(f"task-{n}", now))
        history.flush()
    finally:
        history.stop()
    assert history.pending == 0
    page = app.backend.history_tasks(TaskQuery(limit=1))
    assert page.total == 400
    entry = app.backend.history_task("task-7")
    assert entry is not None and entry.state == "SUCCESS" and entry.worker == "w@h"
    assert (entry.args, entry.kwargs, entry.result) == ("[" + "1," * 10 + "1]", "{}", "2")
    assert gone(pid)


def test_when_the_events_process_dies_a_thread_writes_the_events(app: Celeriac) -> None:
    history = HistoryProcess(_write(app), "history-test")
    history.start()
    pid = history.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: gone(pid), 10)
    try:
        history.submit_rows(rows_of("after", time.time()))
        history.flush()
    finally:
        history.stop()
    assert app.backend.history_task("after").state == "SUCCESS"  # type: ignore[union-attr]


def test_a_running_worker_writes_its_history_from_its_events_process(sqlite_url: str) -> None:
    client = Celeriac("client", broker=sqlite_url)
    try:
        with WorkerProcess(sqlite_url, "-c", "2", app="monitored") as worker:
            events_pid = worker.events_process()
            assert events_pid is not None and events_pid not in worker.children()
            assert len(worker.children()) == 2
            results = [client.send_task("monitored.add", (n, n)) for n in range(20)]
            assert [r.get(timeout=30) for r in results] == [2 * n for n in range(20)]

            def all_recorded() -> bool:
                return client.backend.history_tasks(TaskQuery(state="SUCCESS")).total == 20

            assert wait_for(all_recorded, 15)
            worker.signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        assert gone(events_pid)
    finally:
        client.close()


def test_a_worker_whose_events_process_was_killed_keeps_its_history(sqlite_url: str) -> None:
    client = Celeriac("client", broker=sqlite_url)
    try:
        with WorkerProcess(sqlite_url, "-c", "1", app="monitored") as worker:
            events_pid = worker.events_process()
            assert events_pid is not None
            os.kill(events_pid, signal.SIGKILL)
            results = [client.send_task("monitored.add", (n, 1)) for n in range(10)]
            assert [r.get(timeout=30) for r in results] == [n + 1 for n in range(10)]
            worker.signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        assert "written by a thread from now on" in worker.output
        page = client.backend.history_tasks(TaskQuery(state="SUCCESS"))
        assert page.total == 10
    finally:
        client.close()


def test_a_locked_history_never_holds_up_the_tasks_on_sqlite(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The history is a file of its own (``celeriac.history.db``): while another process holds
    its write lock (another worker's history write, a long prune), tasks still run and store
    their results; the history catches up once the lock is let go."""
    client = Celeriac("client", broker=sqlite_url)
    history = sqlite3.connect(tmp_path / "celeriac.history.db", isolation_level=None)
    try:
        with WorkerProcess(sqlite_url, "-c", "2", app="monitored") as worker:
            first = client.send_task("monitored.add", (1, 1))
            assert first.get(timeout=30) == 2
            assert wait_for(lambda: client.backend.history_task(first.id) is not None, 15)
            history.execute("BEGIN IMMEDIATE")  # the history's write lock, held
            results = [client.send_task("monitored.add", (n, n)) for n in range(20)]
            assert [r.get(timeout=30) for r in results] == [2 * n for n in range(20)]
            ((rows,),) = history.execute("SELECT count(*) FROM celeriac_tasks").fetchall()
            assert rows == 1  # nothing written while locked
            history.execute("COMMIT")

            def all_recorded() -> bool:
                return client.backend.history_tasks(TaskQuery(state="SUCCESS")).total == 21

            assert wait_for(all_recorded, 30), worker.output
            worker.signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        results_file = sqlite3.connect(tmp_path / "celeriac.db")
        tables = {row[0] for row in results_file.execute("SELECT name FROM sqlite_master")}
        results_file.close()
        assert "celeriac_results" in tables and "celeriac_tasks" not in tables
    finally:
        history.close()
        client.close()
