"""The start-up banner a worker started from the command line prints, as Celery's does: who it
is, where its messages and results live (passwords masked), its pool, queues and tasks.

::

    -------------- w1@host (celeriac v0.1.0, Linux-6.1-x86_64, Python 3.11.2)

    [config]
    .> app:         jobs
    .> broker:      redis://:***@localhost:6379/0
    .> results:     redis://:***@localhost:6379/0
    .> concurrency: 4 (prefork pool)
    .> prefetch:    4 more messages held beside running tasks

    [queues]
    .> celeriac         exchange=celeriac(direct) key=celeriac

    [tasks]
      . jobs.add
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

from celeriac import __version__
from celeriac.queues import declared_queues
from celeriac.urls import mask_url

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

BUILTIN_PREFIX = "celeriac."  # built-in tasks: left out, as Celery leaves out its own


BOLD, CYAN = "1", "1;36"  # ANSI SGR codes


def _style(text: str, color: bool, code: str) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def banner(worker: Worker, *, color: bool = False) -> str:
    """The banner of ``worker`` (ANSI colours when ``color``)."""
    app, conf = worker.app, worker.app.conf
    results = conf.result_backend_or_default() or f"{app.broker.url} (the broker's own store)"
    declared = {q.name: q for q in declared_queues(conf.task_queues)}
    system = f"{platform.system()}-{platform.release()}-{platform.machine()}"
    lines = [
        _style(f"-------------- {worker.hostname}", color, CYAN)
        + f" (celeriac v{__version__}, {system}, Python {platform.python_version()})",
        "",
        _style("[config]", color, BOLD),
        f".> app:         {app.main}",
        f".> broker:      {app.broker.url}",
        f".> results:     {mask_url(results)}",
        f".> concurrency: {worker.concurrency} ({worker.options.pool} pool)",
        f".> prefetch:    {worker.dispatcher.extra_prefetch} more messages held beside running"
        " tasks",
        "",
        _style("[queues]", color, BOLD),
    ]
    for name in worker.queues:
        queue = declared.get(name)
        exchange = f"{queue.exchange.name}({queue.exchange.type})" if queue else f"{name}(direct)"
        key = queue.routing_key if queue else name
        lines.append(f".> {name:<16} exchange={exchange} key={key}")
    lines += ["", _style("[tasks]", color, BOLD)]
    names = sorted(n for n in app.tasks if not n.startswith(BUILTIN_PREFIX))
    lines += [f"  . {name}" for name in names] or ["  (none)"]
    return "\n".join(lines) + "\n"
