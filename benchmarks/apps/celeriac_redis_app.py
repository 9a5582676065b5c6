"""celeriac's tasks for the Redis suite: ``celeriac -A celeriac_redis_app worker`` in this folder.

The broker (and, by default, the result store) is ``$BENCH_REDIS_URL``. The benchmark process
imports this module by the same name and calls ``create`` for its client app.
"""

from __future__ import annotations

import os
import time

from celeriac import Celeriac

URL_ENV = "BENCH_REDIS_URL"


def noop() -> None:
    """Do nothing (the result, None, is still stored)."""


def echo(value: int) -> int:
    """Return the argument, so a round trip can be checked."""
    return value


def nap(seconds: float) -> None:
    """Sleep, as a task that waits on I/O would."""
    time.sleep(seconds)


def create(url: str | None = None) -> Celeriac:
    """An app on ``url`` (default ``$BENCH_REDIS_URL``) with the three tasks registered."""
    app = Celeriac("celeriac_redis_app", broker=url or os.environ.get(URL_ENV))
    for function in (noop, echo, nap):
        app.task(name=f"celeriac_redis_app.{function.__name__}")(function)
    return app


app = create()
