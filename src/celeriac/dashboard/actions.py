"""What the dashboard changes, and only through the public API: ``app.control`` for the
workers, ``app.send_task`` for a retry, the broker's dead-letter methods, ``ScheduleControl``
and ``DagRun``.

A retried task is a new task (a new id) with the old one's name, arguments and queue; the link
is its ``parent_id`` (the old id, so the history shows it as the old task's child) and the
``retry_of`` header.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac.beat.schedule_control import ScheduleControl
from celeriac.canvas.dag import DagNodeNotFailed, DagRun, UnknownDagNode
from celeriac.exceptions import CeleriacError
from celeriac.history import TaskQuery

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.history import TaskEntry

RETRY_HEADER = "retry_of"
BULK_RETRY_LIMIT = 1000


class ActionRefused(CeleriacError):
    """A dashboard action that cannot be done (the message says why): HTTP 409."""


class NotFound(CeleriacError, LookupError):
    """The task, entry or run the action names does not exist: HTTP 404."""


def revoke(app: Celeriac, task_id: str, *, terminate: bool = False) -> dict[str, Any]:
    """Revoke a task; with ``terminate``, kill it where it runs (SIGTERM).

    Raises:
        PublishError: the command could not be stored in the broker.
    """
    app.control.revoke(task_id, terminate=terminate, signal="SIGTERM")
    return {"id": task_id, "revoked": True, "terminate": terminate}


def retry(app: Celeriac, task_id: str) -> dict[str, Any]:
    """Send the task again, as a new task linked to the old one; returns the new id.

    Raises:
        NotFound: the history does not know the task.
        ActionRefused: its arguments were not kept (``dashboard_hide_args``), or are not JSON.
        PublishError: the new task was not enqueued.
    """
    entry = app.backend.history_task(task_id)
    if entry is None or not entry.name:
        raise NotFound(f"no task {task_id} in the history")
    return {"id": task_id, "new_id": _send_again(app, entry)}


def _send_again(app: Celeriac, entry: TaskEntry) -> str:
    # Workers record arguments as JSON text ("[]" for none), so two empty texts mean they
    # were hidden (dashboard_hide_args) or never recorded.
    if not entry.args and not entry.kwargs:
        raise ActionRefused(
            f"task {entry.task_id}: its arguments were not kept (dashboard_hide_args), so it "
            "cannot be sent again from here"
        )
    try:
        args = json.loads(entry.args) if entry.args else []
        kwargs = json.loads(entry.kwargs) if entry.kwargs else {}
    except ValueError:
        raise ActionRefused(f"task {entry.task_id}: its arguments are not JSON") from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ActionRefused(f"task {entry.task_id}: its arguments are not a list and a dict")
    options: dict[str, Any] = {
        "parent_id": entry.task_id,
        "root_id": entry.root_id or entry.task_id,
        "headers": {RETRY_HEADER: entry.task_id},
        "add_to_parent": False,
    }
    if entry.queue:
        options["queue"] = entry.queue
    return app.send_task(entry.name, args, kwargs, **options).id


def retry_failed(app: Celeriac, name: str | None = None) -> dict[str, Any]:
    """Retry every failed task in the history (of task ``name`` only, when given), up to
    :data:`BULK_RETRY_LIMIT`; returns ``{retried: [{id, new_id}], refused: [{id, error}]}``.

    Raises:
        BackendError: the backend cannot be reached.
    """
    page = app.backend.history_tasks(
        TaskQuery(state="FAILURE", name=name or None, limit=BULK_RETRY_LIMIT)
    )
    retried, refused = [], []
    for entry in page.tasks:
        try:
            retried.append({"id": entry.task_id, "new_id": _send_again(app, entry)})
        except CeleriacError as exc:
            refused.append({"id": entry.task_id, "error": str(exc)})
    return {"retried": retried, "refused": refused}


def requeue_dead_letters(
    app: Celeriac, tags: Sequence[str] | None, queue: str | None = None
) -> dict[str, Any]:
    """Put dead letters back (``tags``; None: all) in their queue, or in ``queue``.

    Raises:
        BrokerError: the broker cannot be reached.
    """
    return {"requeued": app.broker.requeue_dead_letters(tags, queue or None)}


def delete_dead_letters(app: Celeriac, tags: Sequence[str] | None) -> dict[str, Any]:
    """Delete dead letters for good (``tags``; None: all).

    Raises:
        BrokerError: the broker cannot be reached.
    """
    return {"deleted": app.broker.delete_dead_letters(tags)}


def schedule(app: Celeriac, name: str, what: str) -> dict[str, Any]:
    """``pause``, ``resume`` or ``run`` (now, once) the beat entry ``name``.

    Raises:
        NotFound: no such entry.
        PublishError: a run's message was not enqueued.
    """
    control = ScheduleControl(app)
    try:
        control.entry(name)
    except CeleriacError:
        raise NotFound(f"no schedule entry named {name!r}") from None
    if what == "run":
        return {"name": name, "task_id": control.run(name)}
    if what == "pause":
        control.pause(name)
    else:
        control.resume(name)
    return {"name": name, "paused": what == "pause"}


def retry_dag(app: Celeriac, run_id: str) -> dict[str, Any]:
    """Run the failed nodes of a DAG run again.

    Raises:
        DagRunNotFound: no such run.
        PublishError: a node was not enqueued.
    """
    return {"id": run_id, "retried": DagRun(run_id, app).retry_failed()}


def retry_dag_node(app: Celeriac, run_id: str, node: str) -> dict[str, Any]:
    """Run one failed node of a DAG run again, with the nodes below it that did not run
    because of it only; returns the names retried.

    Raises:
        DagRunNotFound: no such run.
        NotFound: the run has no such node.
        ActionRefused: the node did not fail (the message says its state).
        PublishError: a node was not enqueued.
    """
    try:
        retried = DagRun(run_id, app).retry_failed([node])
    except UnknownDagNode as exc:
        raise NotFound(str(exc)) from None
    except DagNodeNotFailed as exc:
        raise ActionRefused(str(exc)) from None
    return {"id": run_id, "node": node, "retried": retried}


def pool(app: Celeriac, hostname: str, what: str, n: int = 1) -> dict[str, Any]:
    """``grow`` or ``shrink`` the pool of worker ``hostname`` by ``n``, or ``shutdown`` it.

    Raises:
        PublishError: the command could not be stored in the broker.
    """
    destination = [hostname]
    if what == "grow":
        app.control.pool_grow(n, destination=destination)
    elif what == "shrink":
        app.control.pool_shrink(n, destination=destination)
    else:
        app.control.shutdown(destination=destination)
    return {"hostname": hostname, "sent": what}
