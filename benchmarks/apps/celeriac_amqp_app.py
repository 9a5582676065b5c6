"""celeriac's tasks for the AMQP suite: ``celeriac -A celeriac_amqp_app worker`` in this folder.

The broker is RabbitMQ at ``$BENCH_AMQP_URL``, every queue and exchange named under the
``namespace`` ``$BENCH_AMQP_PREFIX`` (one per benchmark run, deleted afterwards); results go to
the Redis database ``$BENCH_REDIS_URL`` (RabbitMQ keeps none). The benchmark process imports
this module by the same name and calls ``create`` for its client app.
"""

from __future__ import annotations

import os
import time

from celeriac import Celeriac

AMQP_ENV, REDIS_ENV, PREFIX_ENV = "BENCH_AMQP_URL", "BENCH_REDIS_URL", "BENCH_AMQP_PREFIX"
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
    amqp_url: str | None = None, redis_url: str | None = None, prefix: str | None = None
) -> Celeriac:
    """An app on RabbitMQ and a Redis result store (defaults: the environment above), its
    names prefixed by ``prefix``, with the three tasks registered."""
    app = Celeriac(
        "celeriac_amqp_app",
        broker=amqp_url or os.environ.get(AMQP_ENV, DEFAULT_AMQP_URL),
        backend=redis_url or os.environ.get(REDIS_ENV, DEFAULT_REDIS_URL),
        broker_transport_options={"namespace": prefix or os.environ.get(PREFIX_ENV, "")},
    )
    for function in (noop, echo, nap):
        app.task(name=f"celeriac_amqp_app.{function.__name__}")(function)
    return app


app = create()
