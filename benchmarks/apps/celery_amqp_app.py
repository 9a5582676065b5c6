"""Celery's tasks for the AMQP suite: ``celery -A celery_amqp_app worker`` in this folder.

Celery 5 on RabbitMQ at ``$BENCH_AMQP_URL`` (Kombu's py-amqp transport) with the Redis result
backend on ``$BENCH_REDIS_URL``. Two settings differ from Celery's defaults: publisher confirms
(``confirm_publish``), because celeriac's AMQP broker always waits for them and the comparison
would otherwise be of unconfirmed sends; and the task queue (and its exchange), named
``$BENCH_AMQP_QUEUE`` so that each benchmark run has its own and deletes it afterwards.
"""

from __future__ import annotations

import os
import time

from celery import Celery

AMQP_ENV, REDIS_ENV, QUEUE_ENV = "BENCH_AMQP_URL", "BENCH_REDIS_URL", "BENCH_AMQP_QUEUE"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"


def noop() -> None:
    """Do nothing (the result, None, is still stored)."""


def echo(value: int) -> int:
    """Return the argument, so a round trip can be checked."""
    return value


def nap(seconds: float) -> None:
    """Sleep, as a task that waits on I/O would."""
    time.sleep(seconds)


def create(
    amqp_url: str | None = None, redis_url: str | None = None, queue: str | None = None
) -> Celery:
    """A Celery app on RabbitMQ and a Redis result backend (defaults: the environment above),
    with the three tasks."""
    app = Celery(
        "celery_amqp_app",
        broker=amqp_url or os.environ.get(AMQP_ENV, DEFAULT_AMQP_URL),
        backend=redis_url or os.environ.get(REDIS_ENV, DEFAULT_REDIS_URL),
    )
    app.conf.broker_transport_options = {"confirm_publish": True}
    app.conf.task_default_queue = queue or os.environ.get(QUEUE_ENV, "celery")
    for function in (noop, echo, nap):
        app.task(name=f"celery_amqp_app.{function.__name__}")(function)
    return app


app = create()
