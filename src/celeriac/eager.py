"""Running a task call in this process as a worker would: ``task.apply()`` and
``task_always_eager``. Retries run again at once, as in Celery's eager mode; the middleware's
``before_execute`` / ``after_execute`` hooks (and so Celery's ``task_prerun`` and friends) run
here as they would in a worker."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.canvas.callbacks import run_links
from celeriac.execution import Action, Outcome, execute
from celeriac.request import Request
from celeriac.result import EagerResult, decode_record

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.task import Task


def apply_eagerly(
    app: Celeriac, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any], **options: Any
) -> EagerResult[Any]:
    """Run a call here and return its result.

    ``throw=True`` (or False) says whether a failure is raised here, as Celery's
    ``apply(throw=...)``; by default ``task_eager_propagates`` decides.

    Raises:
        BaseException: the task's exception, when ``throw`` or ``task_eager_propagates``.
    """
    task_id = str(options.get("task_id") or uuid.uuid4())
    workflow = dict(options.get("workflow") or {})
    outcome, retries, arguments = _run(app, task, task_id, (args, kwargs), workflow)
    record = ResultRecord(
        task_id,
        _eager_state(outcome),
        outcome.payload,
        outcome.content_type,
        time.time(),
        retries,
        {"task": task.name},
    )
    if app.conf.task_store_eager_result:
        app.backend.store(record, expires=app.conf.seconds("result_expires"))
    if options.get("link") or options.get("link_error"):
        run_links(app, record, options, arguments)
    throw = options.get("throw")
    if throw is None:
        throw = app.conf.task_eager_propagates
    if record.state == states.FAILURE and throw:
        raise decode_record(app, record)
    return EagerResult(task_id, app, record)


def _run(
    app: Celeriac,
    task: Task[Any, Any],
    task_id: str,
    arguments: tuple[list[Any], dict[str, Any]],
    workflow: dict[str, Any],
) -> tuple[Outcome, int, tuple[list[Any], dict[str, Any]]]:
    """Run the call until it does not ask to be retried: its outcome, how many retries it
    took, and the arguments of its last run."""
    args, kwargs = arguments
    retries = 0
    while True:
        request = Request(
            id=task_id,
            task=task.name,
            args=args,
            kwargs=kwargs,
            retries=retries,
            is_eager=True,
            called_directly=False,
            hostname="eager",
            delivery_info={"is_eager": True},
            workflow=workflow,
        )
        outcome = execute(task, request, args, kwargs, app.serializer, app.middleware)
        if outcome.retry is None:
            return outcome, retries, (args, kwargs)
        retries += 1  # a retry runs again at once, with the arguments it asked for
        args = outcome.retry.args if outcome.retry.args is not None else args
        kwargs = outcome.retry.kwargs if outcome.retry.kwargs is not None else kwargs


def _eager_state(outcome: Outcome) -> str:
    """An ignored run reads as SUCCESS here (there is no worker to leave no state)."""
    if not outcome.record and outcome.action is Action.ACK:
        return states.SUCCESS
    return outcome.state
