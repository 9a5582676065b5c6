"""``celeriac_redis_app``'s tasks with ``task_history = False``: the "off" side of
``benchmarks.history_cost`` (broker from ``$BENCH_REDIS_URL``, as ``celeriac_redis_app``)."""

from __future__ import annotations

import os
import time

from celeriac import Celeriac

app = Celeriac("celeriac_redis_app", broker=os.environ.get("BENCH_REDIS_URL"), task_history=False)


@app.task(name="celeriac_redis_app.noop")
def noop() -> None:
    """Do nothing (the result, None, is still stored)."""


@app.task(name="celeriac_redis_app.echo")
def echo(value: int) -> int:
    """Return the argument."""
    return value


@app.task(name="celeriac_redis_app.nap")
def nap(seconds: float) -> None:
    """Sleep."""
    time.sleep(seconds)
