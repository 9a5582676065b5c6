"""How fast the dashboard's task list answers with 100,000 tasks in the history, on SQLite and
Redis: a figure to print, not a test (``python tests/dashboard/bench_task_list.py [N]``).

Each query is asked through the dashboard's HTTP API (Starlette's test client, so the figure is
the dashboard's own work and the backend's, without a network), 5 times; the median is printed.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from celeriac import Celeriac
from celeriac.history import TaskEvent
from dashboard.helpers import Dashboard
from support.redis_server import RedisServer

QUERIES = {
    "newest 50": "/api/tasks",
    "page 1000": "/api/tasks?page=1000",
    "state=FAILURE": "/api/tasks?state=FAILURE",
    "name=bench.mul": "/api/tasks?name=bench.mul",
    "text=31337": "/api/tasks?text=31337",
    "HTML /tasks": "/tasks",
    "overview": "/api/overview",
}


def fill(app: Celeriac, count: int) -> None:
    """``count`` finished tasks, one in ten failed, in batches as a worker writes them."""
    start = time.time() - count * 0.01
    for first in range(0, count, 1000):
        events = []
        for n in range(first, min(count, first + 1000)):
            when, task_id = start + n * 0.01, f"task-{n:06d}"
            name = "bench.mul" if n % 7 == 0 else "bench.add"
            fields = {
                "name": name,
                "args": f"[{n}, {n % 100}]",
                "kwargs": "{}",
                "queue": "celeriac",
            }
            events.append(TaskEvent("task-received", task_id, when, "w1@bench", fields))
            if n % 10 == 0:
                failed = {"exception": "KeyError('x')", "traceback": "Traceback", "runtime": 0.01}
                events.append(TaskEvent("task-failed", task_id, when + 0.005, "w1@bench", failed))
            else:
                done = {"result": str(n + n % 100), "runtime": 0.004}
                events.append(TaskEvent("task-succeeded", task_id, when + 0.005, "w1@bench", done))
        app.backend.record_events(events, retention=None)


def measure(url: str, count: int) -> None:
    app = Celeriac("bench", broker=url)
    began = time.monotonic()
    fill(app, count)
    print(f"  appended {count} tasks' events in {time.monotonic() - began:.1f}s")
    began = time.monotonic()
    while app.backend.index_events(60.0):  # as the dashboard's indexer does while it runs
        pass
    print(f"  indexed them in {time.monotonic() - began:.1f}s")
    board = Dashboard(app)
    for label, path in QUERIES.items():
        times = []
        for _ in range(5):
            began = time.monotonic()
            answer = board.get(path)
            times.append(time.monotonic() - began)
            assert answer.status_code == 200, (path, answer.text)
        print(f"  {label:16} {statistics.median(times) * 1000:8.1f} ms")
    app.close()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as folder:
        print(f"SQLite, {count} tasks:")
        measure(f"sqlite:///{folder}/bench.db", count)
        directory = Path(folder) / "redis"
        directory.mkdir()
        with RedisServer(directory).start() as server:
            print(f"Redis, {count} tasks:")
            measure(server.url(), count)


if __name__ == "__main__":
    main()
