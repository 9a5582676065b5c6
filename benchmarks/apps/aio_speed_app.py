"""The tasks of ``benchmarks/asyncio_speed.py``: ``celeriac -A aio_speed_app worker``.

The broker (and the result store) is ``$BENCH_REDIS_URL``. Each task comes as an ``async def``
(for ``-P asyncio``) and as a plain function (for the other pools).
"""

from __future__ import annotations

import os

from celeriac import Celeriac

app = Celeriac("aio_speed_app", broker=os.environ.get("BENCH_REDIS_URL"))


@app.task(name="aio_speed_app.aecho")
async def aecho(value: int) -> int:
    """Return the argument, so a round trip can be checked."""
    return value


@app.task(name="aio_speed_app.echo")
def echo(value: int) -> int:
    """Return the argument, so a round trip can be checked."""
    return value


@app.task(name="aio_speed_app.anoop")
async def anoop() -> None:
    """Do nothing (the result, None, is still stored)."""


@app.task(name="aio_speed_app.noop")
def noop() -> None:
    """Do nothing (the result, None, is still stored)."""
