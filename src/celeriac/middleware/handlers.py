"""``TaskHandlers``: the built-in middleware that calls a task class's own handlers, as Celery
does: ``before_start``, ``on_success``, ``on_failure``, ``on_retry`` and ``after_return``
(``@app.task(base=MyTask)`` with a ``MyTask(Task)`` that overrides them).

They run where the task runs (a prefork child, a pool thread, ``apply()``), with Celery's
arguments; only those the class overrides are called. One that raises is logged with the task's
and the handler's names, the others still run, and the task's outcome stands.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.middleware.base import Middleware
from celeriac.middleware.signals import ExceptionInfo

if TYPE_CHECKING:
    from celeriac.execution import Outcome
    from celeriac.request import Request
    from celeriac.task import Task

log = logging.getLogger("celeriac.middleware")


def _call(task: Task[Any, Any], handler: str, *args: Any) -> None:
    try:
        getattr(task, handler)(*args)
    except Exception:
        log.exception("handler %s of task %s raised; carrying on", handler, task.name)


class TaskHandlers(Middleware):
    """Calls the handlers a task's class overrides; see the module docstring."""

    def before_execute(self, task: Task[Any, Any], request: Request) -> None:
        """``before_start(task_id, args, kwargs)``."""
        if "before_start" in task.overridden_handlers:
            _call(task, "before_start", request.id or "", request.args, request.kwargs)

    def on_retry(self, task: Task[Any, Any], request: Request, reason: BaseException) -> None:
        """``on_retry(exc, task_id, args, kwargs, einfo)``."""
        if "on_retry" in task.overridden_handlers:
            einfo = ExceptionInfo.of(reason)
            _call(task, "on_retry", reason, request.id or "", request.args, request.kwargs, einfo)

    def on_failure(self, task: Task[Any, Any], request: Request, exc: BaseException) -> None:
        """``on_failure(exc, task_id, args, kwargs, einfo)``."""
        if "on_failure" in task.overridden_handlers:
            einfo = ExceptionInfo.of(exc)
            _call(task, "on_failure", exc, request.id or "", request.args, request.kwargs, einfo)

    def after_execute(
        self, task: Task[Any, Any], request: Request, outcome: Outcome, value: Any
    ) -> None:
        """``on_success(retval, task_id, args, kwargs)`` when it succeeded, then
        ``after_return(status, retval, task_id, args, kwargs, einfo)``."""
        handlers = task.overridden_handlers
        if not handlers:
            return
        task_id, args, kwargs = request.id or "", request.args, request.kwargs
        if outcome.state == states.SUCCESS and "on_success" in handlers:
            _call(task, "on_success", value, task_id, args, kwargs)
        if "after_return" in handlers:
            einfo = ExceptionInfo.of(value) if isinstance(value, BaseException) else None
            _call(task, "after_return", outcome.state, value, task_id, args, kwargs, einfo)
