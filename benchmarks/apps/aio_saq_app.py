"""SAQ's task for the asyncio suite: ``saq aio_saq_app.settings``.

SAQ's defaults (a finished job and its result kept 600 s), ``concurrency`` =
``$BENCH_CONCURRENCY``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from saq import Queue

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
queue = Queue.from_url(URL)


async def wait(ctx: dict[str, Any], *, seconds: float) -> None:
    """Await ``seconds``."""
    await asyncio.sleep(seconds)


settings = {
    "queue": queue,
    "functions": [wait],
    "concurrency": int(os.environ.get("BENCH_CONCURRENCY", "100")),
}
