"""Huey's tasks for the Redis suite: ``huey_consumer huey_redis_app.huey`` in this folder.

A ``RedisHuey`` on ``$BENCH_REDIS_URL`` that stores every result (``store_none=True``, as
celeriac and Celery do). ``$BENCH_HUEY_NOTIFY=1`` turns on Huey's notifying result wait
(``notify_result=True``: the worker pushes to a list that ``Result.get`` blocks on), which the
latency scenario uses; Huey's default, off, is used elsewhere.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from huey import RedisHuey

URL_ENV = "BENCH_REDIS_URL"
NOTIFY_ENV = "BENCH_HUEY_NOTIFY"


def noop() -> None:
    """Do nothing (the result, None, is still stored: ``store_none=True``)."""


def echo(value: int) -> int:
    """Return the argument."""
    return value


def nap(seconds: float) -> None:
    """Sleep."""
    time.sleep(seconds)


@dataclass(frozen=True)
class Bench:
    """A Huey instance and its tasks."""

    huey: RedisHuey
    noop: Any
    echo: Any
    nap: Any


def create(url: str | None = None, *, notify: bool | None = None) -> Bench:
    """A RedisHuey on ``url`` (default ``$BENCH_REDIS_URL``)."""
    url = url or os.environ.get(URL_ENV, "redis://127.0.0.1:6379/12")
    if notify is None:
        notify = os.environ.get(NOTIFY_ENV) == "1"
    instance = RedisHuey("bench", url=url, store_none=True, notify_result=notify)
    return Bench(instance, instance.task()(noop), instance.task()(echo), instance.task()(nap))


huey = create().huey
