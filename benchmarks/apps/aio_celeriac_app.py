"""celeriac's task for the asyncio suite: ``celeriac -A aio_celeriac_app worker -P asyncio``.

The broker (and the result store) is ``$BENCH_REDIS_URL``; every other setting is the default.
"""

from __future__ import annotations

import asyncio
import os

from celeriac import Celeriac

app = Celeriac("aio_celeriac_app", broker=os.environ.get("BENCH_REDIS_URL"))


@app.task(name="aio_celeriac_app.wait")
async def wait(seconds: float) -> None:
    """Await ``seconds``, as a task calling an API would."""
    await asyncio.sleep(seconds)
