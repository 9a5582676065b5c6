"""Taskiq's task for the asyncio suite: ``taskiq worker aio_taskiq_app:broker --workers 1
--max-async-tasks $BENCH_CONCURRENCY``.

taskiq-redis's recommended pair: a ``ListQueueBroker`` (a Redis list) and the
``RedisAsyncResultBackend``, results kept (no expiry set), on ``$BENCH_REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import os

from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
broker = ListQueueBroker(URL).with_result_backend(RedisAsyncResultBackend(URL))


@broker.task(task_name="wait")
async def wait(seconds: float) -> None:
    """Await ``seconds``."""
    await asyncio.sleep(seconds)
