"""arq's task for the asyncio suite: ``arq aio_arq_app.WorkerSettings``.

arq's defaults (results kept an hour), but ``max_jobs`` = ``$BENCH_CONCURRENCY``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from arq.connections import RedisSettings

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


async def wait(ctx: dict[str, Any], seconds: float) -> None:
    """Await ``seconds``."""
    await asyncio.sleep(seconds)


class WorkerSettings:
    """What ``arq`` reads."""

    functions = [wait]
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = int(os.environ.get("BENCH_CONCURRENCY", "100"))
