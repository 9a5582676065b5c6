"""Celery's tasks for the Redis suite: ``celery -A celery_redis_app worker`` in this folder.

Celery 5 in its usual setup: the Redis broker and the Redis result backend, both on
``$BENCH_REDIS_URL``; every other setting is Celery's default.
"""

from __future__ import annotations

import os
import time

from celery import Celery

URL_ENV = "BENCH_REDIS_URL"


def create(url: str | None = None) -> Celery:
    """A Celery app on ``url`` (default ``$BENCH_REDIS_URL``) with the three tasks."""
    url = url or os.environ.get(URL_ENV, "redis://127.0.0.1:6379/12")
    app = Celery("celery_redis_app", broker=url, backend=url)

    @app.task(name="celery_redis_app.noop")
    def noop() -> None:
        """Do nothing (the result, None, is still stored)."""

    @app.task(name="celery_redis_app.echo")
    def echo(value: int) -> int:
        """Return the argument."""
        return value

    @app.task(name="celery_redis_app.nap")
    def nap(seconds: float) -> None:
        """Sleep."""
        time.sleep(seconds)

    return app


app = create()
