"""Running one task call and describing what happened, the same way in a pool child and in
``task.apply()``.

The outcome is plain data (a state, a serialized payload, and for a retry when and with what) so
that it crosses the pipe from a pool child to the worker's main process cheaply, and so that the
main process, which records it, never runs user code to do so.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from celeriac import states
from celeriac.canvas.calls import call_task
from celeriac.exceptions import Ignore, Reject, Retry
from celeriac.serialization import Serializer, exception_to_dict, json_dumps
from celeriac.task import Request, Task

REJECTED = "REJECTED"
IGNORED = "IGNORED"


@dataclass(frozen=True)
class Outcome:
    """What one run of a task came to.

    ``state`` is SUCCESS, FAILURE or RETRY, or REJECTED / IGNORED for the two task predicates.
    ``payload`` is the serialized return value for SUCCESS and the JSON description of the
    exception otherwise.
    """

    state: str
    payload: bytes
    content_type: str
    runtime: float = 0.0
    retry_delay: float | None = None  # seconds from now, on the broker's clock
    retry_at: float | None = None  # or an absolute time (epoch), from an explicit eta
    retry_args: list[Any] | None = None
    retry_kwargs: dict[str, Any] | None = None
    retry_options: dict[str, Any] = field(default_factory=dict)
    requeue: bool = False
    children: tuple[str, ...] = ()  # ids of the calls the task sent while it ran

    @property
    def reason(self) -> str:
        """A one-line description of the exception, for logs and dead letters."""
        if self.state == states.SUCCESS:
            return ""
        info = json.loads(self.payload)
        message = " ".join(str(a) for a in info.get("exc_message", []))
        return f"{info.get('exc_type', 'Exception')}: {message}".rstrip(": ")


def failure(exc: BaseException, runtime: float = 0.0, state: str = states.FAILURE) -> Outcome:
    """An outcome that records ``exc`` (FAILURE unless ``state`` says otherwise)."""
    return Outcome(state, json_dumps(exception_to_dict(exc)), "application/json", runtime)


def retry_time(
    when: float | datetime.datetime | None, default: float
) -> tuple[float | None, float | None]:
    """When a retry should run: ``(delay in seconds, None)`` or ``(None, absolute epoch time)``.

    A delay is kept relative so that the worker measures it on the broker's clock. Naive
    datetimes are taken as UTC.
    """
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return None, when.timestamp()
    return (default if when is None else float(when)), None


def execute(
    task: Task[Any, Any],
    request: Request,
    args: list[Any],
    kwargs: dict[str, Any],
    serializer: Serializer,
) -> Outcome:
    """Run ``task`` with ``request`` as its ``self.request`` and return the outcome.

    Never raises for what the task does: its exceptions become FAILURE outcomes. Canvas markers
    in ``request.workflow`` (errbacks, map, DAG failures) are applied here (``canvas.calls``).
    """
    outcome = _execute(task, request, args, kwargs, serializer)
    if request.children:
        outcome = replace(outcome, children=tuple(request.children))
    return outcome


def _execute(
    task: Task[Any, Any],
    request: Request,
    args: list[Any],
    kwargs: dict[str, Any],
    serializer: Serializer,
) -> Outcome:
    token = task.push_request(request)
    started = time.perf_counter()
    try:
        try:
            value = call_task(task, request, args, kwargs, serializer)
        except Retry:
            raise
        except Exception as exc:
            task.autoretry(exc)
            raise
    except Retry as retry:
        return _retried(task, retry, time.perf_counter() - started)
    except Reject as reject:
        outcome = failure(reject, time.perf_counter() - started, REJECTED)
        return replace(outcome, requeue=reject.requeue)
    except Ignore as ignore:
        return failure(ignore, time.perf_counter() - started, IGNORED)
    except Exception as exc:
        return failure(exc, time.perf_counter() - started)
    finally:
        task.pop_request(token)
    runtime = time.perf_counter() - started
    try:
        payload = serializer.dumps(value)
    except Exception as exc:
        error = TypeError(f"{task.name} returned a value that cannot be serialized: {exc}")
        return failure(error, runtime)
    return Outcome(states.SUCCESS, payload, serializer.content_type, runtime)


def _retried(task: Task[Any, Any], retry: Retry, runtime: float) -> Outcome:
    reason = retry.exc if retry.exc is not None else retry
    recorded = failure(reason, runtime, states.RETRY)
    delay, at = retry_time(retry.when, task.default_retry_delay)
    return Outcome(
        state=states.RETRY,
        payload=recorded.payload,
        content_type=recorded.content_type,
        runtime=runtime,
        retry_delay=delay,
        retry_at=at,
        retry_args=None if retry.retry_args is None else list(retry.retry_args),
        retry_kwargs=retry.retry_kwargs,
        retry_options=retry.options,
    )
