"""What the asyncio pool's child does with a job: ``TaskRunner``'s steps, with the call awaited.

``prepare`` decodes a ``JobWire`` as ``TaskRunner.run_wire`` does (a message or arguments that
do not decode ask for the message to be dead-lettered) and says whether the task is an ``async
def``. ``aexecute`` is ``execution.execute`` for a coroutine: the same middleware hooks, the
same ``self.request``, the same outcomes for retries, ``Reject``, ``Ignore`` and failures; only
the call is awaited, on the child's loop, where a soft time limit can interrupt it
(``coroutines.interruptible``). A plain function sent to the asyncio pool runs with
``execution.execute`` in a thread of the child.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celeriac.canvas.calls import call_task
from celeriac.coroutines import Interrupt, interruptible, is_coroutine_task
from celeriac.exceptions import CeleriacError, TaskRevokedError
from celeriac.execution import (
    Action,
    Outcome,
    begin_execution,
    end_execution,
    failure,
    run_call,
)
from celeriac.message import Message, decode_arguments
from celeriac.request import Request, pop_request, request_for
from celeriac.result.joining import denied_join_result
from celeriac.task import Task
from celeriac.worker.pool import JobWire
from celeriac.worker.runner import TaskRunner

_ASYNC: dict[Callable[..., Any], bool] = {}  # a task's function -> it is an ``async def``


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 3x, once a job
class Prepared:
    """A job decoded and ready to run."""

    task: Task[Any, Any]
    request: Request
    args: list[Any]
    kwargs: dict[str, Any]

    @property
    def is_async(self) -> bool:
        """True when the task's function is an ``async def``."""
        fn = self.task.fn
        found = _ASYNC.get(fn)
        if found is None:
            found = _ASYNC[fn] = is_coroutine_task(fn)
        return found

    @property
    def label(self) -> str:
        """``name[id]``, for logs."""
        return f"{self.task.name}[{self.request.id}]"


def prepare(runner: TaskRunner, wire: JobWire) -> Prepared | Outcome:
    """The job decoded, or the outcome that dead-letters a message that does not decode."""
    _, raw, queue, attempt, binding, _, _ = wire
    try:
        message = Message.decode(raw, max_bytes=runner.max_bytes, checked=True)
        args, kwargs = decode_arguments(runner.serializer, message.content_type, message.body)
    except CeleriacError as exc:
        return failure(exc, action=Action.DEAD_LETTER)
    request = request_for(
        message, hostname=runner.hostname, queue=queue, attempt=attempt, binding=binding
    )
    request.args, request.kwargs = args, kwargs
    return Prepared(runner.tasks[message.task], request, args, kwargs)


async def aexecute(runner: TaskRunner, job: Prepared, interrupt: Interrupt) -> Outcome:
    """Await ``job``'s call with the middleware around it; see ``execution.execute``.

    A cancellation (a hard time limit, ``terminate``) that reaches the call ends it as
    ``TaskRevokedError``; the pool records the job as killed whatever the outcome says.
    """
    task, request, args, kwargs = job.task, job.request, job.args, job.kwargs
    token = begin_execution(task, request, runner.middleware)
    started = time.perf_counter()
    try:
        with denied_join_result():
            call = await _awaited_call(task, request, args, kwargs, runner, interrupt)
            outcome, value = run_call(
                task, request, args, kwargs, runner.serializer, started, call=call
            )
    finally:
        pop_request(token)
    return end_execution(task, request, runner.middleware, outcome, value)


async def _awaited_call(
    task: Task[Any, Any],
    request: Request,
    args: list[Any],
    kwargs: dict[str, Any],
    runner: TaskRunner,
    interrupt: Interrupt,
) -> Callable[..., Any]:
    """Await the call now; return a stand-in for ``call_task`` that gives its value or raises
    its exception, for ``run_call`` to turn into the outcome."""
    try:
        value = call_task(task, request, args, kwargs, runner.serializer, settle=_left_as_is)
        if inspect.iscoroutine(value):
            value = await interruptible(value, interrupt)
        elif isinstance(value, list) and any(inspect.iscoroutine(v) for v in value):
            value = await _each(value, interrupt)  # map / starmap of an async task, in order
    except asyncio.CancelledError:
        error: Exception = TaskRevokedError("cancelled (time limit or terminate)")
        return _raiser(error)
    except Exception as exc:
        return _raiser(exc)
    return lambda *_: value


async def _each(values: list[Any], interrupt: Interrupt) -> list[Any]:
    results: list[Any] = []
    try:
        for value in values:
            if inspect.iscoroutine(value):
                value = await interruptible(value, interrupt)
            results.append(value)
    finally:  # the calls after one that raised never run: close them, unawaited
        for rest in values[len(results) + 1 :]:
            if inspect.iscoroutine(rest):
                rest.close()
    return results


def _left_as_is(value: Any) -> Any:
    return value


def _raiser(exc: Exception) -> Callable[..., Any]:
    def call(*_: Any) -> Any:
        raise exc

    return call
