"""Tasks for the fairness test (tests/test_worker_fairness.py): one slow task, many fast ones.

The broker comes from $CELERIAC_BROKER_URL. Each task appends one line to the file it is given
when it finishes (the slow one also when it starts): O_APPEND writes this small are atomic, so
the file's line order is the order in which the tasks finished, across every worker process.
"""

import os
import time

from celeriac import Celery

app = Celery("fairness")


def _note(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{text} {time.monotonic():.6f}\n".encode())
    finally:
        os.close(fd)


@app.task(bind=True)
def slow(self, path, seconds):
    """Note the start, sleep ``seconds``, note the end (with the worker's name)."""
    _note(path, f"slow-start {self.request.hostname}")
    time.sleep(seconds)
    _note(path, f"slow-end {self.request.hostname}")


@app.task(bind=True)
def fast(self, path, label):
    """Note that ``label`` finished, and on which worker."""
    _note(path, f"fast-{label} {self.request.hostname}")
