"""Tasks that the workflow tests run in real worker subprocesses (``celeriac -A flows worker``).

Each task has an explicit ``flows.*`` name so that a client can send it by name without
importing this module. The broker comes from $CELERIAC_BROKER_URL and the lease from
$CELERIAC_TEST_LEASE. Tasks that must be counted append one line per run to a file: O_APPEND
writes this small are atomic, so the count is exact across processes.
"""

import os
import time

from celeriac import Celery

app = Celery("flows")
app.conf.broker_transport_options = {
    "lease_seconds": float(os.environ.get("CELERIAC_TEST_LEASE", "30"))
}


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


@app.task(name="flows.add")
def add(x, y):
    return x + y


@app.task(name="flows.mul")
def mul(x, y):
    return x * y


@app.task(name="flows.tsum")
def tsum(numbers):
    return sum(numbers)


@app.task(name="flows.xsum")
def xsum(numbers):
    return sum(numbers)


@app.task(name="flows.slow_add")
def slow_add(x, y, seconds):
    time.sleep(seconds)
    return x + y


@app.task(name="flows.counted_sum", bind=True)
def counted_sum(self, numbers, path):
    """Sum, and log "<task id> <delivery attempt> <pid>": a second line with attempt 1 for one
    id would mean that the message was enqueued twice."""
    _append(path, f"{self.request.id} {self.request.delivery_info.get('attempt')} {os.getpid()}")
    return sum(numbers)


@app.task(name="flows.log_value")
def log_value(value, path):
    _append(path, f"value {value}")
    return value


@app.task(name="flows.fails")
def fails(*args):
    raise KeyError(f"failed with {args}")


@app.task(name="flows.on_error")
def on_error(task_id, path):
    _append(path, f"errback {task_id}")


@app.task(name="flows.on_error_full")
def on_error_full(request, exc, traceback, path):
    _append(path, f"full {request.id} {type(exc).__name__} {'KeyError' in (traceback or '')}")


@app.task(name="flows.stamp")
def stamp(*parents, name, seconds=0.0):
    """A DAG node that records when it ran (its parents' results are not kept)."""
    started = time.time()
    time.sleep(seconds)
    return {"name": name, "start": started, "end": time.time()}


@app.task(name="flows.needs_marker")
def needs_marker(*parents, path, name):
    """Fails until the file ``path`` exists."""
    if not os.path.exists(path):
        raise RuntimeError(f"{name}: {path} does not exist yet")
    started = time.time()
    return {"name": name, "start": started, "end": time.time()}
