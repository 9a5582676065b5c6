"""Driving an execution pool in the test process: jobs made as the worker makes them, and the
outcomes gathered by polling, as its main loop does."""

from __future__ import annotations

import itertools
import time
from typing import Any

from celeriac import Celeriac
from celeriac.brokers.base import Delivery
from celeriac.message import Message
from celeriac.worker.pool import ExecutionPool, Finished, Job, job_for

_numbers = itertools.count(1)


def make_job(app: Celeriac, task: str, *args: Any, soft: float | None = None) -> Job:
    """A job of ``task`` with ``args``, its message under a lease as a fetch would give it."""
    number = next(_numbers)
    body = app.serializer.dumps([list(args), {}])
    message = Message(id=f"job-{number}", task=task, body=body)
    delivery = Delivery(message.encode(), "celeriac", "1", "token", 1)
    return job_for(number, message, delivery, soft_time_limit=soft, time_limit=None)


def collect(pool: ExecutionPool, count: int, timeout: float = 15.0) -> list[Finished]:
    """Poll ``pool`` until ``count`` jobs have left it (failing after ``timeout`` seconds)."""
    finished: list[Finished] = []
    deadline = time.monotonic() + timeout
    while len(finished) < count and time.monotonic() < deadline:
        finished += pool.poll(0.02, [])
    assert len(finished) == count, finished
    return finished
