"""Running one task call and describing what happened, the same way in a pool child, in a pool
thread and in ``task.apply()``.

The outcome is plain data (a real task state, a serialized payload, what should become of the
message, and for a retry when and with what) so that it crosses the pipe from a pool child to
the worker's main process cheaply, and so that the main process, which records it, never runs
user code to do so. The middleware's ``before_execute``, ``on_retry``, ``on_failure`` and
``after_execute`` hooks are called here, where the task runs.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.canvas.calls import call_task
from celeriac.exceptions import Ignore, Reject, Retry, TaskPredicate
from celeriac.request import Request, pop_request, push_request
from celeriac.retries import RetryPlan, plan_for
from celeriac.serialization import JSON, Serializer, exception_to_dict, json_dumps

if TYPE_CHECKING:
    from celeriac.middleware import MiddlewareStack
    from celeriac.task import Task


class Action(enum.Enum):
    """What becomes of a message once its outcome is recorded."""

    ACK = "ack"  # done: remove it
    RETRY = "retry"  # replace it with its retry, which waits in the broker until its ETA
    REQUEUE = "requeue"  # give it back as it is, its attempt count kept (Reject(requeue=True))
    GIVE_BACK = "give_back"  # handed back unstarted: its attempt count starts again
    DEAD_LETTER = "dead_letter"  # move it to the dead-letter store, with the reason
    ALREADY_ACKED = "already_acked"  # acks_late=False: it was acknowledged before it ran


@dataclass(frozen=True)
class Outcome:
    """What one run of a task came to.

    ``state`` is a task state (SUCCESS, FAILURE, RETRY or REVOKED); ``payload`` is the
    serialized return value for SUCCESS and the JSON description of the exception otherwise.
    ``action`` is what the run asks for its message (the worker may decide otherwise when the
    process died); ``record`` is False when no state is to be stored (``Ignore``).
    """

    state: str
    payload: bytes
    content_type: str
    runtime: float = 0.0
    action: Action = Action.ACK
    record: bool = True
    retry: RetryPlan | None = None
    children: tuple[str, ...] = ()  # ids of the calls the task sent while it ran

    @property
    def reason(self) -> str:
        """A one-line description of the exception, for logs and dead letters."""
        if self.state == states.SUCCESS:
            return ""
        info = json.loads(self.payload)
        message = " ".join(str(a) for a in info.get("exc_message", []))
        return f"{info.get('exc_type', 'Exception')}: {message}".rstrip(": ")


def failure(
    exc: BaseException,
    runtime: float = 0.0,
    *,
    state: str = states.FAILURE,
    action: Action = Action.ACK,
) -> Outcome:
    """An outcome that records ``exc`` (FAILURE unless ``state`` says otherwise)."""
    return Outcome(state, json_dumps(exception_to_dict(exc)), JSON, runtime, action)


NOTHING = Outcome(states.PENDING, b"null", JSON, record=False)  # for messages handed back unrun


def execute(
    task: Task[Any, Any],
    request: Request,
    args: list[Any],
    kwargs: dict[str, Any],
    serializer: Serializer,
    middleware: MiddlewareStack,
) -> Outcome:
    """Run ``task`` with ``request`` as its ``self.request`` and return the outcome.

    Never raises for what the task does: its exceptions become FAILURE outcomes. Canvas markers
    in ``request.workflow`` (errbacks, map, DAG failures) are applied here (``canvas.calls``).
    """
    middleware.before_execute(task, request)
    token = push_request(request)
    started = time.perf_counter()
    try:
        outcome, value = _run(task, request, args, kwargs, serializer, started)
    finally:
        pop_request(token)
    if outcome.state == states.RETRY:
        middleware.on_retry(task, request, value)
    elif outcome.state == states.FAILURE and not isinstance(value, TaskPredicate):
        middleware.on_failure(task, request, value)
    if request.children:
        outcome = replace(outcome, children=tuple(request.children))
    middleware.after_execute(task, request, outcome, value)
    return outcome


def _run(
    task: Task[Any, Any],
    request: Request,
    args: list[Any],
    kwargs: dict[str, Any],
    serializer: Serializer,
    started: float,
) -> tuple[Outcome, Any]:
    """The outcome, and the value returned or the exception raised."""
    try:
        try:
            value = call_task(task, request, args, kwargs, serializer)
        except (Retry, Reject, Ignore):
            raise
        except Exception as exc:
            task.autoretry(exc)
            raise
    except Retry as retry:
        reason = retry.exc if retry.exc is not None else retry
        runtime = time.perf_counter() - started
        plan = plan_for(retry, task.default_retry_delay)
        outcome = failure(reason, runtime, state=states.RETRY, action=Action.RETRY)
        return replace(outcome, retry=plan), reason
    except Reject as reject:
        # Requeued, it will run again: nothing is recorded until then.
        action = Action.REQUEUE if reject.requeue else Action.DEAD_LETTER
        outcome = failure(reject, time.perf_counter() - started, action=action)
        return replace(outcome, record=not reject.requeue), reject
    except Ignore as ignore:
        return replace(failure(ignore, time.perf_counter() - started), record=False), ignore
    except Exception as exc:
        return failure(exc, time.perf_counter() - started), exc
    runtime = time.perf_counter() - started
    try:
        payload = serializer.dumps(value)
    except Exception as exc:
        error = TypeError(f"{task.name} returned a value that cannot be serialized: {exc}")
        return failure(error, runtime), error
    return Outcome(states.SUCCESS, payload, serializer.content_type, runtime), value
