"""How a task is called when its message carries a canvas marker; runs where the task runs.

Messages are JSON, so an exception or a ``Request`` cannot travel in one. The worker's main
process puts a marker in ``workflow`` instead, and the process that runs the task (a pool child,
or this process for ``apply()``) rebuilds the Python objects just before the call:

``errback``
    The call is an errback of a failed task. Its first argument is the failed task's id (Celery's
    one-parameter form). When the errback's function takes more than one positional parameter
    beyond the arguments its signature already holds (``def on_error(request, exc, traceback)``),
    it is called with the failed task's ``Request``, the rebuilt exception and the traceback text
    instead (Celery's three-parameter form).
``dag_failed``
    A DAG node marked ``run_on_failure`` whose parents (named in the marker) failed: their values
    arrive as exception descriptions and are rebuilt into exception instances.
``xmap``
    ``"map"`` calls the task once per item of the first argument, ``"starmap"`` with each item as
    its arguments; the list of results is the result.
"""

from __future__ import annotations

import base64
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celeriac.coroutines import settle as settle_here
from celeriac.exceptions import CeleriacError
from celeriac.message import Message, decode_arguments
from celeriac.request import Request
from celeriac.serialization import Serializer, exception_from_dict

if TYPE_CHECKING:
    from celeriac.task import Task

MAX_CARRIED_BODY = 64 * 1024  # a failed call's arguments ride with its errback up to this size
_REQUEST_FIELDS = ("retries", "root_id", "parent_id", "group_id")


def errback_marker(
    failed: Message | None,
    *,
    task_id: str,
    task: str,
    exc_info: dict[str, Any],
    body: tuple[bytes, str] | None = None,
) -> dict[str, Any]:
    """What an errback's message carries about the call that failed (JSON-ready).

    ``exc_info`` is the exception as ``serialization.exception_to_dict`` describes it; the
    failed call's arguments come from its message, or from ``body`` (bytes, content type).
    """
    marker: dict[str, Any] = {"id": task_id, "task": task, "exc": exc_info}
    if failed is not None:
        marker.update(retries=failed.retries, root_id=failed.root_id, parent_id=failed.parent_id)
        marker["group_id"] = failed.group_id
        body = body or (failed.body, failed.content_type)
    if body is not None and len(body[0]) <= MAX_CARRIED_BODY:
        marker["body"] = base64.b64encode(body[0]).decode("ascii")
        marker["content_type"] = body[1]
    return marker


def call_task(
    task: Task[Any, Any],
    request: Request,
    args: list[Any],
    kwargs: dict[str, Any],
    serializer: Serializer,
    settle: Callable[[Any], Any] = settle_here,
) -> Any:
    """Call ``task.run`` with these arguments, as the markers in ``request.workflow`` say.

    Each call's value goes through ``settle``: by default, an ``async def`` task's coroutine is
    run to its end on this thread's event loop (``coroutines.settle``); the asyncio pool passes
    one that leaves it for its loop to await.

    Raises:
        Exception: whatever the task raises.
    """
    workflow = request.workflow or {}
    if "errback" in workflow and _wants_request(task, len(args) - 1):
        args = [*_errback_arguments(workflow["errback"], serializer), *args[1:]]
    if "dag_failed" in workflow and args:
        args = [_rebuild_failures(workflow["dag_failed"], args[0]), *args[1:]]
    mode = workflow.get("xmap")
    if mode == "map":
        return [settle(task.run(item, *args[1:], **kwargs)) for item in args[0]]
    if mode == "starmap":
        return [settle(task.run(*item, *args[1:], **kwargs)) for item in args[0]]
    return settle(task.run(*args, **kwargs))


def _wants_request(task: Task[Any, Any], given: int) -> bool:
    """Celery's rule: more than one positional parameter (beyond those already given), or
    ``*args``, means the ``(request, exc, traceback)`` form."""
    parameters = list(inspect.signature(task.fn).parameters.values())
    if task.bind:
        parameters = parameters[1:]
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in positional) - max(given, 0) > 1


def _errback_arguments(marker: dict[str, Any], serializer: Serializer) -> list[Any]:
    info = marker.get("exc") or {}
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    if marker.get("body"):
        try:
            body = base64.b64decode(marker["body"])
            args, kwargs = decode_arguments(serializer, str(marker.get("content_type")), body)
        except (CeleriacError, ValueError):
            pass  # the errback still runs, without the failed call's arguments
    request = Request(
        id=marker.get("id"),
        task=marker.get("task"),
        args=args,
        kwargs=kwargs,
        called_directly=False,
        **{key: marker[key] for key in _REQUEST_FIELDS if marker.get(key) is not None},
    )
    return [request, exception_from_dict(info), info.get("traceback")]


def _is_exception_info(value: Any) -> bool:
    return isinstance(value, dict) and {"exc_type", "exc_module", "exc_message"} <= set(value)


def _rebuild_failures(marker: dict[str, Any], value: Any) -> Any:
    if not marker.get("named"):
        return exception_from_dict(value) if _is_exception_info(value) else value
    if not isinstance(value, dict):
        return value
    rebuilt = dict(value)
    for name in marker.get("parents") or []:
        if _is_exception_info(rebuilt.get(name)):
            rebuilt[name] = exception_from_dict(rebuilt[name])
    return rebuilt
