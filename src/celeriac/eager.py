"""Running a task call in this process as a worker would: ``task.apply()`` and
``task_always_eager``. Retries run again at once, as in Celery's eager mode."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.canvas.eager import run_links
from celeriac.execution import IGNORED, execute
from celeriac.result import EagerResult, decode_record
from celeriac.task import Request, Task

if TYPE_CHECKING:
    from celeriac.app import Celeriac


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
            workflow=dict(options.get("workflow") or {}),
        )
        outcome = execute(task, request, args, kwargs, app.serializer)
        if outcome.state != states.RETRY:
            break
        retries += 1
        args = outcome.retry_args if outcome.retry_args is not None else args
        kwargs = outcome.retry_kwargs if outcome.retry_kwargs is not None else kwargs
    state = states.SUCCESS if outcome.state == IGNORED else outcome.state
    if state not in states.ALL_STATES:
        state = states.FAILURE
    record = ResultRecord(
        task_id,
        state,
        outcome.payload,
        outcome.content_type,
        time.time(),
        retries,
        {"task": task.name},
    )
    if app.conf.task_store_eager_result:
        app.backend.store(record, expires=app.conf.seconds("result_expires"))
    if options.get("link") or options.get("link_error"):
        run_links(app, record, options, (args, kwargs))
    throw = options.get("throw")
    if throw is None:
        throw = app.conf.task_eager_propagates
    if state == states.FAILURE and throw:
        raise decode_record(app, record)
    return EagerResult(task_id, app, record)
