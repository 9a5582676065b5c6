"""How long history searches take with 100,000 tasks stored, on SQLite and on Redis.

Run: ``.venv/bin/python -m benchmarks.history_search [tasks]``. Fills a fresh backend with
``tasks`` tasks (received, started, succeeded or failed: three events each, appended to the
event log in frames of 300 events as a worker's turns would), indexes them all (as the
dashboard's indexer would), then times each kind of search (the median of 5).
Needs ``redis-server`` on the PATH for the Redis half.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from celeriac.backends.base import ResultBackend
from celeriac.backends.sqlite import SqliteBackend
from celeriac.history import FAILED, RECEIVED, STARTED, SUCCEEDED, TaskEvent, TaskQuery

T0 = time.time() - 3600
NAMES = [f"jobs.task{i}" for i in range(20)]


def fill(backend: ResultBackend, tasks: int) -> float:
    began = time.perf_counter()
    batch: list[TaskEvent] = []
    for i in range(tasks):
        at, tid, host = T0 + i * 0.01, f"task-{i:08d}", f"w{i % 4}@host"
        name = NAMES[i % len(NAMES)]
        fields = {"name": name, "args": f"[{i}, {i * 7}]", "kwargs": f'{{"user": "u{i % 997}"}}'}
        end = SUCCEEDED if i % 10 else FAILED
        batch += [
            TaskEvent(RECEIVED, tid, at, host, fields),
            TaskEvent(STARTED, tid, at + 0.001, host, {"pid": 1}),
            TaskEvent(end, tid, at + 0.005, host, {"result": f'"done {i}"', "runtime": 0.004}),
        ]
        if len(batch) >= 300:
            backend.record_events(batch, retention=7 * 86400)
            batch = []
    backend.record_events(batch, retention=7 * 86400)
    return time.perf_counter() - began


def index(backend: ResultBackend) -> float:
    """Index the whole log, as the dashboard's indexer (or the first reads) would."""
    began = time.perf_counter()
    while backend.index_events(60.0):
        pass
    return time.perf_counter() - began


QUERIES: dict[str, Callable[[], TaskQuery]] = {
    "newest 50": lambda: TaskQuery(),
    "page 100 (offset 5000)": lambda: TaskQuery(offset=5000),
    "state=FAILURE": lambda: TaskQuery(state="FAILURE"),
    "name": lambda: TaskQuery(name="jobs.task3"),
    "worker+state": lambda: TaskQuery(worker="w1@host", state="SUCCESS"),
    "last 10 minutes": lambda: TaskQuery(since=T0 + 400),
    "text in kwargs": lambda: TaskQuery(text='"u42"'),
    "text+name": lambda: TaskQuery(text="done 9", name="jobs.task9"),
}


def measure(label: str, backend: ResultBackend, tasks: int) -> None:
    print(f"{label}: appending {tasks} tasks' events took {fill(backend, tasks):.1f}s")
    print(f"{label}: indexing them took {index(backend):.1f}s")
    for what, query in QUERIES.items():
        times = []
        for _ in range(5):
            began = time.perf_counter()
            page = backend.history_tasks(query())
            times.append(time.perf_counter() - began)
        print(f"  {what:24} {statistics.median(times) * 1000:8.1f} ms  (total {page.total})")
    calls: dict[str, Callable[[], object]] = {
        "history_counts": backend.history_counts,
        "history_series 1h/60s": lambda: backend.history_series(T0, 60),
        "history_task": lambda: backend.history_task("task-00050000"),
    }
    for what, call in calls.items():
        began = time.perf_counter()
        call()
        print(f"  {what:24} {(time.perf_counter() - began) * 1000:8.1f} ms")


def main() -> None:
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        measure("SQLite", SqliteBackend(str(Path(tmp) / "h.db")), tasks)
        sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
        from celeriac.backends.redis import RedisBackend
        from support.redis_server import RedisServer

        server = RedisServer(directory=Path(tmp)).start()
        try:
            measure("Redis", RedisBackend(server.url()), tasks)
        finally:
            server.close()


if __name__ == "__main__":
    main()
