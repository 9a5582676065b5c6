"""Tasks for the rate-limit, autoscale and worker-flag tests, run in real worker subprocesses.

The broker comes from $CELERIAC_BROKER_URL. Receivers of the worker signals (``celeryd_init``,
``worker_init``, ``worker_process_shutdown``) write "<signal> <details>" lines to the file named
by $CELERIAC_TEST_SIGNAL_LOG, when it is set.
"""

import os
import time
import uuid
from pathlib import Path

from celeriac import Celery, SoftTimeLimitExceeded, signals

app = Celery("throttled")
SIGNAL_LOG = os.environ.get("CELERIAC_TEST_SIGNAL_LOG", "")
if os.environ.get("CELERIAC_TEST_DEFAULT_RATE"):
    app.conf.task_default_rate_limit = os.environ["CELERIAC_TEST_DEFAULT_RATE"]


def _note(line: str) -> None:
    if SIGNAL_LOG:
        fd = os.open(SIGNAL_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{line}\n".encode())
        finally:
            os.close(fd)


@signals.celeryd_init.connect
def on_celeryd_init(sender=None, instance=None, conf=None, options=None, **kwargs):
    _note(f"celeryd_init {sender} {type(instance).__name__} {conf is app.conf} {os.getpid()}")


@signals.worker_init.connect
def on_worker_init(sender=None, **kwargs):
    _note(f"worker_init {type(sender).__name__} {os.getpid()}")


@signals.worker_ready.connect
def on_worker_ready(sender=None, **kwargs):
    _note(f"worker_ready {os.getpid()}")


@signals.worker_process_init.connect
def on_process_init(sender=None, **kwargs):
    _note(f"worker_process_init {os.getpid()}")


@signals.worker_process_shutdown.connect
def on_process_shutdown(sender=None, pid=None, exitcode=None, **kwargs):
    _note(f"worker_process_shutdown {pid} {exitcode} {os.getpid()}")


@app.task(rate_limit="5/s")
def limited(n):
    return time.time()


@app.task(rate_limit="1/m")
def paced(n):
    return time.time()


@app.task
def free(n):
    return time.time()


@app.task
def gate(directory, count, timeout=60.0):
    """Wait until ``count`` gate tasks are running at once: each leaves a file in
    ``directory`` and waits for ``count`` files. Returns how many it saw."""
    folder = Path(directory)
    (folder / uuid.uuid4().hex).touch()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = len(list(folder.iterdir()))
        if seen >= count:
            return seen
        time.sleep(0.02)
    raise TimeoutError(f"only {len(list(folder.iterdir()))} of {count} ran at once")


@app.task
def sleepy(seconds):
    time.sleep(seconds)
    return seconds


@app.task
def soft_catcher():
    try:
        time.sleep(60)
    except SoftTimeLimitExceeded:
        return "caught soft limit"
    return "slept"


@app.task
def stubborn():
    try:
        time.sleep(60)
    except SoftTimeLimitExceeded:
        time.sleep(60)
    return "slept"
