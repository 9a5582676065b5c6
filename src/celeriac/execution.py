"""Running one task call and describing what happened, the same way in a pool child, in a pool
thread and in ``task.apply()``.

The outcome is plain data (a real task state, a serialized payload, what should become of the
message, for a retry when and with what, for ``self.replace()`` the plan that replaces it) so
that it crosses the pipe from a pool child to the worker's main process cheaply, and so that the
main process, which records it, never runs user code to do so. The middleware's
``before_execute``, ``on_retry``, ``on_failure`` and ``after_execute`` hooks are called here,
where the task runs.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable
from contextvars import Token
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.canvas.calls import call_task
from celeriac.canvas.chain import chain
from celeriac.canvas.group import group, plan_fan_in
from celeriac.canvas.plan import CARRIED, Context, Plan
from celeriac.canvas.signature import Signature, maybe_signature
from celeriac.exceptions import ConfigurationError, Ignore, Reject, Retry, TaskPredicate
from celeriac.request import Request, pop_request, push_request
from celeriac.result import denied_join_result
from celeriac.retries import RetryPlan, plan_for
from celeriac.serialization import JSON, Serializer, exception_to_dict, json_dumps

if TYPE_CHECKING:
    from celeriac.app import Celeriac
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
    REPLACE = "replace"  # self.replace(): publish the replacement, then remove it


class Replaced(Ignore):
    """Raised by ``Task.replace()``: this call is done, and ``plan`` (sent by the worker when
    it settles the message) or, in ``apply()``, ``value`` (the replacement's result, already
    computed here) stands for it."""

    def __init__(self, plan: Plan | None = None, value: Any = None) -> None:
        super().__init__("replaced by a new task")
        self.plan = plan
        self.value = value


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
    replacement: Plan | None = None  # what replaces the call (Action.REPLACE)

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
    An ``async def`` task runs on this thread's event loop (``coroutines.settle``); the asyncio
    pool awaits it on its own loop instead, with the same steps (``worker/arunner.py``).
    """
    token = begin_execution(task, request, middleware)
    started = time.perf_counter()
    try:
        if request.is_eager:
            outcome, value = run_call(task, request, args, kwargs, serializer, started)
        else:  # a worker's pool: a task that waits for another may starve it (Celery's rule)
            with denied_join_result():
                outcome, value = run_call(task, request, args, kwargs, serializer, started)
    finally:
        pop_request(token)
    return end_execution(task, request, middleware, outcome, value)


def begin_execution(
    task: Task[Any, Any], request: Request, middleware: MiddlewareStack
) -> Token[Request | None]:
    """The steps before a call: ``before_execute``, and ``request`` made ``self.request``
    (undo with ``pop_request`` on the token returned)."""
    middleware.before_execute(task, request)
    request.executing = task
    return push_request(request)


def end_execution(
    task: Task[Any, Any],
    request: Request,
    middleware: MiddlewareStack,
    outcome: Outcome,
    value: Any,
) -> Outcome:
    """The steps after a call: the middleware's ``on_retry`` / ``on_failure`` and
    ``after_execute``, and the ids of the calls it sent; returns the final outcome."""
    if outcome.state == states.RETRY:
        middleware.on_retry(task, request, value)
    elif outcome.state == states.FAILURE and not isinstance(value, TaskPredicate):
        middleware.on_failure(task, request, value)
    if request.children:
        outcome = replace(outcome, children=tuple(request.children))
    middleware.after_execute(task, request, outcome, value)
    return outcome


def run_call(
    task: Task[Any, Any],
    request: Request,
    args: list[Any],
    kwargs: dict[str, Any],
    serializer: Serializer,
    started: float,
    call: Callable[..., Any] = call_task,
) -> tuple[Outcome, Any]:
    """The outcome, and the value returned or the exception raised, of ``call`` (given these
    arguments; ``call_task`` unless the asyncio pool awaited the call already)."""
    try:
        try:
            value = call(task, request, args, kwargs, serializer)
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
    except Replaced as replaced:
        return _replaced(task, replaced, serializer, time.perf_counter() - started), replaced
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
        payload, content_type = serializer.dumps_result(value)
    except Exception as exc:
        error = TypeError(f"{task.name} returned a value that cannot be serialized: {exc}")
        return failure(error, runtime), error
    return Outcome(states.SUCCESS, payload, content_type, runtime), value


def _replaced(
    task: Task[Any, Any], replaced: Replaced, serializer: Serializer, runtime: float
) -> Outcome:
    """The outcome of a call that ``self.replace()`` ended: on a worker, nothing recorded
    and the plan to publish; in ``apply()``, the replacement's value as this call's."""
    if replaced.plan is not None:
        outcome = failure(replaced, runtime, action=Action.REPLACE)
        return replace(outcome, record=False, replacement=replaced.plan)
    try:
        payload, content_type = serializer.dumps_result(replaced.value)
    except Exception as exc:
        error = TypeError(f"{task.name} returned a value that cannot be serialized: {exc}")
        return failure(error, runtime)
    return Outcome(states.SUCCESS, payload, content_type, runtime)


def replacement_plan(sig: Signature | dict[str, Any], request: Request, app: Celeriac) -> Plan:
    """What a worker publishes for ``self.replace(sig)``: ``sig`` frozen with the replaced
    call's id (a chain's last task takes it; a group keeps its list of results under it),
    with the call's links, the rest of its chain, and its chord or DAG membership.

    Raises:
        ConfigurationError: a group replacing a call that has links or a chain after it.
        ValueError: an empty chain or group.
        TypeError, MessageTooLarge: a message of the replacement cannot be built.
    """
    assert request.id is not None
    new = maybe_signature(sig, app).clone()._expanded()
    workflow = request.workflow or {}
    carry = {key: workflow[key] for key in CARRIED if key in workflow}
    ctx = Context(
        app,
        carry=carry,
        parent_id=request.parent_id,
        root_id=request.root_id or request.id,
        group_id=request.group_id,
    )
    if isinstance(new, group):
        if request.callbacks or request.chain:
            raise ConfigurationError(
                f"{request.task}: replacing a call that has links or a chain after it with a "
                "group is not supported yet; replace it with a chord(group, body) instead"
            )
        new.freeze(request.id)
        return plan_fan_in(ctx, request.id, new.tasks, None, (), {})
    for callback in request.callbacks or []:
        new.link(callback)
    for errback in request.errbacks or []:
        new.link_error(errback)
    new.freeze(request.id)
    steps = [maybe_signature(step, app) for step in reversed(request.chain or [])]
    if steps:  # the steps keep their ids: results handed out before still point at them
        new = chain(new, *steps, app=app)
        new.freeze()
    return new._plan(ctx)
