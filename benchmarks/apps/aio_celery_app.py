"""Celery's task for the asyncio suite: ``celery -A aio_celery_app worker -P threads``.

Celery runs no coroutines: its answer to I/O-bound tasks is a pool of threads, each task a
blocking ``time.sleep``. The Redis broker and result backend are ``$BENCH_REDIS_URL``.
"""

from __future__ import annotations

import os
import time

from celery import Celery

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
app = Celery("aio_celery_app", broker=URL, backend=URL)


@app.task(name="aio_celery_app.wait")
def wait(seconds: float) -> None:
    """Sleep ``seconds`` in the task's thread."""
    time.sleep(seconds)
