"""What a worker tells ``app.control.inspect()``: read-only views of what it holds and knows.

Every function here only reads the worker's parts (the dispatcher's held messages, the pool's
jobs, the command reader's revocations) from its main thread, between two turns, and returns
JSON-ready values in Celery's shapes. Arguments are shown only for JSON bodies (the main
process never unpickles a body), and not at all with ``dashboard_hide_args`` (they are then
``''``, as in the task history).
"""

from __future__ import annotations

import os
import resource
import time
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import CeleriacError
from celeriac.message import decode_arguments
from celeriac.queues import declared_queues
from celeriac.serialization import JSON
from celeriac.worker.held import Held

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

BUILTIN_PREFIX = "celeriac."  # built-in tasks, left out of ``registered`` as Celery leaves its own


def _arguments(worker: Worker, held: Held) -> tuple[Any, Any]:
    message = held.message
    assert message is not None
    if worker.app.conf.dashboard_hide_args:  # as the task history keeps them: not at all
        return "", ""
    if message.content_type != JSON:
        return f"({len(message.body)} bytes of {message.content_type})", {}
    try:
        return decode_arguments(worker.app.serializer, message.content_type, message.body)
    except CeleriacError:
        return "(arguments that do not decode)", {}


def _wall(monotonic: float) -> float:
    """The epoch time of a ``time.monotonic()`` reading."""
    return time.time() - (time.monotonic() - monotonic)


def request_info(
    worker: Worker, held: Held, *, started: float | None = None, pid: int | None = None
) -> dict[str, Any]:
    """One held message as Celery's ``Request.info()`` shows it."""
    message = held.message
    assert message is not None
    args, kwargs = _arguments(worker, held)
    # The dispatcher's table of task_queues bindings, read only (as delivery_info names them).
    bindings = worker.dispatcher._bindings
    exchange, routing_key = bindings.get(held.delivery.queue, ("", held.delivery.queue))
    return {
        "id": message.id,
        "name": message.task,
        "type": message.task,
        "args": args,
        "kwargs": kwargs,
        "hostname": worker.hostname,
        "time_start": None if started is None else _wall(started),
        "acknowledged": held.early_acked,
        "delivery_info": {
            "exchange": exchange,
            "routing_key": routing_key,
            "queue": held.delivery.queue,
            "priority": message.priority,
            "redelivered": held.delivery.attempt > 1,
        },
        "worker_pid": pid,
        "retries": message.retries,
        "eta": message.eta,
        "expires": message.expires,
        "parent_id": message.parent_id,
        "root_id": message.root_id,
    }


def _started_jobs(worker: Worker) -> dict[int, tuple[float | None, int]]:
    """Job key -> (monotonic start, pid) of the jobs that run now (not those only offered)."""
    children = getattr(worker.pool, "_children", None)  # prefork: a process and start per job
    if children is not None:
        return {
            c.running.job.key: (c.running.started, c.process.pid or 0)
            for c in children
            if c.running is not None
        }
    return {job.key: (None, os.getpid()) for job in worker.pool.running()}


def active(worker: Worker) -> list[dict[str, Any]]:
    """The tasks running now."""
    started = _started_jobs(worker)
    return [
        request_info(worker, held, started=started[key][0] or held.since, pid=started[key][1])
        for key, held in worker.dispatcher.running.items()
        if key in started and held.message is not None
    ]


def reserved(worker: Worker) -> list[dict[str, Any]]:
    """The tasks held and not started: waiting for a process (or offered to a busy one), or
    for a rate limit's token."""
    dispatcher = worker.dispatcher
    started = _started_jobs(worker)
    offered = [h for k, h in dispatcher.running.items() if k not in started]
    throttled = [h for line in dispatcher.throttle.lines.values() for h in line]
    held = [*offered, *dispatcher.waiting, *throttled]
    return [request_info(worker, h) for h in held if h.message is not None]


def registered(worker: Worker, items: list[str] | None = None) -> list[str]:
    """The names of the tasks this worker runs (built-ins left out), with the attributes
    ``items`` names as Celery shows them: ``'tasks.add [rate_limit=10/s]'``."""
    names = sorted(n for n in worker.app.tasks if not n.startswith(BUILTIN_PREFIX))
    if not items:
        return names
    shown = []
    for name in names:
        task = worker.app.tasks[name]
        found = [(i, getattr(task, i, None)) for i in items]
        fields = " ".join(f"{i}={v}" for i, v in found if v is not None)
        shown.append(f"{name} [{fields}]" if fields else name)
    return shown


def active_queues(worker: Worker) -> list[dict[str, Any]]:
    """The queues this worker fetches from, as kombu describes a queue."""
    declared = {q.name: q for q in declared_queues(worker.app.conf.task_queues)}
    described = []
    for name in worker.consumer.queues:
        queue = declared.get(name)
        exchange = queue.exchange.name if queue else name
        kind = queue.exchange.type if queue else "direct"
        described.append(
            {
                "name": name,
                "exchange": {"name": exchange, "type": kind},
                "routing_key": queue.routing_key if queue else name,
                "durable": True,
                "exclusive": False,
                "auto_delete": False,
                "no_ack": False,
            }
        )
    return described


def _rusage() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "utime": usage.ru_utime,
        "stime": usage.ru_stime,
        "maxrss": usage.ru_maxrss,
        "nvcsw": usage.ru_nvcsw,
        "nivcsw": usage.ru_nivcsw,
    }


def stats(worker: Worker, totals: dict[str, int], started_at: float) -> dict[str, Any]:
    """Celery's ``stats()``: the pid, the pool, tasks run by name, uptime, broker, rusage."""
    pool = worker.pool
    pids = getattr(pool, "pids", None)
    return {
        "pid": os.getpid(),
        "hostname": worker.hostname,
        "clock": str(int(time.time())),
        "uptime": int(time.monotonic() - started_at),
        "pool": {
            "implementation": type(pool).__name__,
            "max-concurrency": pool.size(),
            "processes": pids() if callable(pids) else [os.getpid()],
            "free-slots": pool.free_slots(),
            "max-tasks-per-child": worker.options.max_tasks_per_child,
            "timeouts": [worker.soft_time_limit, worker.time_limit],
        },
        "total": dict(sorted(totals.items())),
        "broker": {"url": worker.app.broker.url, "transport": worker.app.broker.url.split(":")[0]},
        "prefetch_count": pool.size() + worker.dispatcher.extra_prefetch,
        "queues": list(worker.consumer.queues),
        "rusage": _rusage(),
    }
