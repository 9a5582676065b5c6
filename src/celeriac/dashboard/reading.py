"""What the dashboard shows that is not task history: queues, dead letters, schedules, DAG runs.

Every function returns JSON-ready values, so a page and its ``/api/`` twin show the same thing.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from celeriac.beat.schedule_control import ScheduleControl
from celeriac.canvas.dag import DagRun
from celeriac.canvas.dag_index import RUNS_KEPT, recent_runs
from celeriac.canvas.dag_status import run_state
from celeriac.exceptions import MalformedMessage
from celeriac.message import Message
from celeriac.urls import mask_url

if TYPE_CHECKING:
    from celeriac.app import Celeriac

DAG_RUNS_SHOWN = 50  # recent DAG runs on /dags, and from /api/dags without a limit
DAG_RUNS_KEPT = RUNS_KEPT  # the most /api/dags returns: the index keeps the newest 200
RETRYABLE = ("FAILURE", "REVOKED")  # a node in these states has a Retry button


def hide_args(app: Celeriac) -> bool:
    """True when ``dashboard_hide_args`` says a task's arguments must not be shown."""
    try:
        return bool(app.conf.dashboard_hide_args)
    except AttributeError:  # a setting this version does not know yet
        return False


def known_queues(app: Celeriac, extra: list[str] | None = None) -> list[str]:
    """The queues worth showing: the default one, those configured, and ``extra`` (the ones
    workers consume or dead letters died in), sorted."""
    names = {app.conf.task_default_queue}
    configured = app.conf.task_queues or ()
    for queue in configured:
        names.add(queue if isinstance(queue, str) else getattr(queue, "name", str(queue)))
    names.update(extra or ())
    return sorted(n for n in names if n)


def queues(app: Celeriac, extra: list[str] | None = None) -> list[dict[str, Any]]:
    """Each known queue (see :func:`known_queues`; and those that workers consume, from their
    heartbeats) with its length.

    Raises:
        BrokerError, BackendError: the stores cannot be reached.
    """
    consumed = [q for worker in app.backend.workers() for q in worker.queues]
    lengths = app.broker.queue_lengths(known_queues(app, [*consumed, *(extra or ())]))
    return [{"name": name, "length": length} for name, length in sorted(lengths.items())]


def dead_letters(app: Celeriac, limit: int = 100) -> list[dict[str, Any]]:
    """The newest dead letters, each with the task it carried (when it parses).

    Raises:
        BrokerError: the broker cannot be reached.
    """
    hidden = hide_args(app)
    found = []
    for letter in app.broker.dead_letters(limit):
        item: dict[str, Any] = {
            "tag": letter.tag,
            "queue": letter.queue,
            "reason": letter.reason,
            "dead_at": letter.dead_at,
            "task_id": None,
            "task": None,
            "args": "",
        }
        try:
            message = Message.decode(letter.body)
        except MalformedMessage:
            found.append(item)
            continue
        item["task_id"], item["task"] = message.id, message.task
        if not hidden:
            item["args"] = _arguments_text(app, message)
        found.append(item)
    return found


def _arguments_text(app: Celeriac, message: Message) -> str:
    try:
        args, kwargs = message.arguments(app.serializer)
    except Exception:  # any body we cannot read: show that, never fail the page
        return "(arguments not readable here)"
    return f"args={args!r} kwargs={kwargs!r}"


def schedules(app: Celeriac) -> list[dict[str, Any]]:
    """Every beat entry: schedule, target, paused, last and next run.

    Raises:
        BackendError: the backend cannot be reached.
    """
    return [
        {
            "name": entry.name,
            "schedule": entry.schedule,
            "target": entry.target,
            "paused": entry.paused,
            "last_run": _iso(entry.last_run),
            "next_run": _iso(entry.next_run),
            "runtime": entry.runtime,
        }
        for entry in ScheduleControl(app).entries()
    ]


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


def dag_run(app: Celeriac, run_id: str) -> dict[str, Any]:
    """A DAG run: its name, state, and every node with its state, parents and depth (the
    longest path from a root, which the page draws as its column).

    Raises:
        DagRunNotFound: there is no run with this id.
    """
    run = DagRun(run_id, app)
    document = run.document()
    nodes = run.status()
    depth: dict[str, int] = {}
    for node in nodes:  # nodes come in the order added, so parents come first
        depth[node.name] = 1 + max((depth.get(p, 0) for p in node.parents), default=-1)
    finished = [n.state for n in nodes]
    return {
        "id": run_id,
        "name": document.get("name"),
        "created": document.get("created"),
        "state": run_state(finished) if finished else "EMPTY",
        "nodes": [
            {
                "name": node.name,
                "state": node.state,
                "attempt": node.attempt,
                "task_id": node.task_id,
                "parents": list(node.parents),
                "depth": depth[node.name],
                "retryable": node.state in RETRYABLE,
            }
            for node in nodes
        ],
    }


def dag_runs(app: Celeriac, limit: int = DAG_RUNS_SHOWN) -> list[dict[str, Any]]:
    """The newest DAG runs, newest first (at most ``limit``, and the index's 200): id, name,
    when applied, state, and how many nodes are in each state.

    Raises:
        BackendError: the backend cannot be reached.
    """
    return [
        {
            "id": run.id,
            "name": run.name,
            "created": run.created,
            "state": run.state,
            "nodes": run.total,
            "counts": run.counts,
        }
        for run in recent_runs(app, limit)
    ]


def connection(app: Celeriac) -> dict[str, str]:
    """The broker and backend URLs, passwords masked."""
    return {"broker": mask_url(app.broker.url), "backend": mask_url(app.backend.url)}
