"""``Request``: what a running task knows about its own call (``self.request``), and which call
(and, as ``current_task``, which task) runs in this context.

It sits below everything that sends or runs tasks: a task sent from inside another one descends
from it (``sender_lineage``) and is listed among its children (``note_children``), whether it
was sent by ``delay()``, by a workflow or by beat.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celeriac.message import Message

if TYPE_CHECKING:
    from celeriac.task import Task


@dataclass
class Request:
    """What a running task knows about its own call (``self.request``)."""

    id: str | None = None
    task: str | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    eta: float | None = None
    expires: float | None = None
    hostname: str | None = None
    delivery_info: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    workflow: dict[str, Any] = field(default_factory=dict)
    time_limit: float | None = None
    soft_time_limit: float | None = None
    is_eager: bool = False
    called_directly: bool = True
    children: list[str] = field(default_factory=list)  # ids of the calls this call sent
    ignore_result: bool = False
    origin: str | None = None
    reply_to: str | None = None
    utc: bool = True
    group_index: int | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    stamps: dict[str, Any] = field(default_factory=dict)
    # The Task object running this call, where it runs (``current_task``); never sent.
    executing: Any = field(default=None, repr=False, compare=False)

    @property
    def group(self) -> str | None:
        """Celery's name for ``group_id``."""
        return self.group_id

    @property
    def correlation_id(self) -> str | None:
        """Celery's AMQP correlation id: the task id."""
        return self.id

    @property
    def timelimit(self) -> tuple[float | None, float | None]:
        """Celery's ``(hard, soft)`` time limits of this call."""
        return self.time_limit, self.soft_time_limit

    @property
    def callbacks(self) -> list[dict[str, Any]] | None:
        """The signatures (as dicts) linked to this call's success, or None."""
        return _entries(self.workflow.get("link"))

    @property
    def errbacks(self) -> list[dict[str, Any]] | None:
        """The signatures (as dicts) linked to this call's failure, or None."""
        return _entries(self.workflow.get("link_error"))

    @property
    def chain(self) -> list[dict[str, Any]] | None:
        """The steps of a chain still to run after this one (as dicts), in Celery's order:
        the next step last."""
        steps = self.workflow.get("chain")
        return list(reversed(steps)) if steps else None

    @property
    def chord(self) -> dict[str, Any] | None:
        """The chord this call ends a member of (``{"id", "size"}``), or None."""
        return self.workflow.get("chord")

    @property
    def argsrepr(self) -> str:
        """The positional arguments as text, for logs."""
        return repr(tuple(self.args))

    @property
    def kwargsrepr(self) -> str:
        """The keyword arguments as text, for logs."""
        return repr(self.kwargs)


def _entries(value: Any) -> list[dict[str, Any]] | None:
    if not value:
        return None
    return list(value) if isinstance(value, list | tuple) else [value]


def request_for(
    message: Message,
    *,
    hostname: str | None,
    queue: str,
    attempt: int,
    binding: tuple[str, str] | None = None,
) -> Request:
    """The ``self.request`` of a run of ``message`` on a worker (its arguments, which stay
    serialized until the run, are filled in where it runs).

    ``delivery_info`` has Celery's keys: the exchange and routing key that ``task_queues``
    declares for the queue (``binding``), else no exchange (``''``) and the queue's name, and
    ``redelivered``, true when the broker delivered this message before (``attempt`` counts
    deliveries).
    """
    exchange, routing_key = binding or ("", queue)
    delivery_info = {
        "exchange": exchange,
        "routing_key": routing_key,
        "queue": queue,
        "priority": message.priority,
        "redelivered": attempt > 1,
        "attempt": attempt,
    }
    return Request(
        id=message.id,
        task=message.task,
        retries=message.retries,
        eta=message.eta,
        expires=message.expires,
        hostname=hostname,
        delivery_info=delivery_info,
        headers=message.headers,
        ignore_result=message.ignore_result,
        properties={"correlation_id": message.id, "priority": message.priority},
        parent_id=message.parent_id,
        root_id=message.root_id,
        group_id=message.group_id,
        workflow=message.workflow,
        called_directly=False,
        time_limit=message.time_limit,
        soft_time_limit=message.soft_time_limit,
    )


_current: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "celeriac_request", default=None
)


def current_request() -> Request | None:
    """The task call running in this context, if any."""
    return _current.get()


def push_request(request: Request) -> contextvars.Token[Request | None]:
    """Make ``request`` the current call; pair with :func:`pop_request`."""
    return _current.set(request)


def pop_request(token: contextvars.Token[Request | None]) -> None:
    """Restore the call that was current before :func:`push_request`."""
    _current.reset(token)


def sender_lineage(request: Request | None) -> tuple[str | None, str | None]:
    """The parent and root ids of a call sent while ``request`` runs.

    A call sent from a task run by a worker (or by ``apply()``) descends from it; one sent from
    a task called directly descends from whatever that direct call descends from.
    """
    if request is None:
        return None, None
    if request.called_directly or request.id is None:
        return request.parent_id, request.root_id
    return request.id, request.root_id or request.id


def note_children(task_ids: Iterable[str]) -> None:
    """Calls sent from inside a task run by a worker: its result lists them as children."""
    request = _current.get()
    if request is not None and not request.called_directly:
        request.children.extend(task_ids)


class CurrentTask:
    """Celery's ``current_task``: the task whose call runs in this context. Outside a task it
    is falsy and equals None; inside, ``current_task.request.id`` and every other attribute
    are the running task's."""

    def _get_current_object(self) -> Task[Any, Any] | None:
        """The running task, or None (Celery's name for it)."""
        request = current_request()
        return None if request is None else request.executing

    def __bool__(self) -> bool:
        return self._get_current_object() is not None

    def __eq__(self, other: object) -> bool:
        return self._get_current_object() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._get_current_object())

    def __getattr__(self, name: str) -> Any:
        task = self._get_current_object()
        if task is None:
            raise AttributeError(f"current_task.{name}: no task is running here")
        return getattr(task, name)


current_task = CurrentTask()


def get_current_task() -> Task[Any, Any] | None:
    """The task whose call runs in this context, or None."""
    return current_task._get_current_object()
