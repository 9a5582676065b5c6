"""How to run a worker: the options the CLI's ``worker`` flags fill in, and the node name."""

from __future__ import annotations

import socket
from dataclasses import dataclass

POOLS = ("prefork", "threads", "solo", "asyncio")


@dataclass(frozen=True)
class WorkerOptions:
    """How to run a worker; the CLI's ``worker`` flags, one field each."""

    concurrency: int | None = None
    queues: tuple[str, ...] = ()
    pool: str = "prefork"
    hostname: str | None = None
    max_tasks_per_child: int | None = None
    max_memory_per_child: int | None = None
    prefetch_multiplier: int | None = None
    shutdown_timeout: float | None = None
    install_signal_handlers: bool = True
    autoscale: tuple[int, int] | None = None  # (MAX, MIN): --autoscale MAX,MIN
    time_limit: float | None = None  # the default task_time_limit of this worker
    soft_time_limit: float | None = None  # the default task_soft_time_limit of this worker
    purge: bool = False  # --purge: delete the waiting messages of its queues at start-up
    exclude_queues: tuple[str, ...] = ()  # -X: queues of task_queues not to consume
    processes: int | None = None  # --processes: child processes of the asyncio pool (default 1)


def format_hostname(name: str | None) -> str:
    """The node name: ``-n`` with Celery's ``%h`` (host), ``%n`` (short host) and ``%d``
    (domain) filled in; ``celeriac@<host>`` when not given."""
    host = socket.gethostname()
    short, _, domain = host.partition(".")
    name = name or "celeriac@%h"
    return name.replace("%h", host).replace("%n", short).replace("%d", domain)
