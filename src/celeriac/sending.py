"""Turning a task call into a message: options checked, routed, timed, serialized, signed.

``Celeriac.send_task`` and everything that publishes (canvas, beat) build their messages here,
so a call means the same whichever way it is sent.
"""

from __future__ import annotations

import datetime
import uuid
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac.canvas.signature import links_workflow
from celeriac.config import to_seconds
from celeriac.exceptions import ConfigurationError, MessageTooLarge
from celeriac.message import Message
from celeriac.router import Router
from celeriac.task import Task, current_request, sender_lineage

if TYPE_CHECKING:
    from celeriac.app import Celeriac

SEND_OPTIONS = frozenset(
    {
        "countdown",
        "eta",
        "expires",
        "queue",
        "priority",
        "task_id",
        "headers",
        "link",
        "link_error",
        "ignore_result",
        "time_limit",
        "soft_time_limit",
        "retries",
        "parent_id",
        "root_id",
        "group_id",
        "workflow",
        "serializer",
        "add_to_parent",
    }
)


def check_send_options(options: dict[str, Any]) -> None:
    """Raise if ``options`` holds a name that ``apply_async`` does not know.

    Raises:
        ConfigurationError: naming the unknown options.
    """
    unknown = sorted(set(options) - SEND_OPTIONS)
    if unknown:
        raise ConfigurationError(f"unknown option(s) for sending a task: {', '.join(unknown)}")


def build_message(
    app: Celeriac,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    task: Task[Any, Any] | None,
    options: dict[str, Any],
) -> Message:
    """The signed message for one call, routed and checked, ready to publish.

    Options win over the task's own defaults, which win over ``task_routes``. ``countdown``
    and relative ``expires`` count from the broker's clock, the clock that decides when the
    broker hands the message out.

    Raises:
        ConfigurationError: a bad priority or time.
        TypeError: the arguments do not serialize.
        MessageTooLarge: the message is over ``message_max_bytes``.
    """
    serializer, defaults = app.serializer, _defaults(app)
    given = {k: v for k, v in options.items() if v is not None}
    route = Router(app.conf.task_routes).route(name, args, kwargs, given)
    routed = {**route, **_task_defaults(task), **given}
    try:
        body = serializer.dumps([list(args), kwargs])
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: arguments cannot be serialized: {exc}") from exc
    now = app.broker.clock()
    countdown = to_seconds(routed.get("countdown"), "countdown")
    eta = now + countdown if countdown is not None else epoch(routed.get("eta"), "eta")
    message = Message(
        id=str(routed.get("task_id") or uuid.uuid4()),
        task=name,
        body=body,
        content_type=serializer.content_type,
        queue=str(routed.get("queue") or defaults.queue),
        priority=_priority(routed.get("priority", defaults.priority)),
        eta=eta,
        expires=_expiry(routed.get("expires"), now),
        retries=int(routed.get("retries", 0)),
        sent_at=now,
        headers=dict(routed.get("headers") or {}),
        workflow=links_workflow(routed, app),
        ignore_result=bool(routed.get("ignore_result", defaults.ignore_result)),
        time_limit=to_seconds(routed.get("time_limit"), "time_limit"),
        soft_time_limit=to_seconds(routed.get("soft_time_limit"), "soft_time_limit"),
        **_lineage(routed),
    ).signed(serializer)
    _check_size(message, defaults.max_bytes)
    return message


@dataclass(frozen=True)
class _SendDefaults:
    """The settings every call reads, derived once per version of the app's settings."""

    version: int
    queue: str
    priority: int
    ignore_result: bool
    max_bytes: int


_cache: weakref.WeakKeyDictionary[Celeriac, _SendDefaults] = weakref.WeakKeyDictionary()


def _defaults(app: Celeriac) -> _SendDefaults:
    conf = app.conf
    cached = _cache.get(app)
    if cached is None or cached.version != conf.version:
        cached = _cache[app] = _SendDefaults(
            version=conf.version,
            queue=conf.task_default_queue,
            priority=conf.task_default_priority,
            ignore_result=bool(conf.task_ignore_result),
            max_bytes=int(conf.message_max_bytes),
        )
    return cached


def note_child(task_id: str, options: dict[str, Any]) -> None:
    """Sent from inside a task run by a worker: the task's result lists it as a child."""
    request = current_request()
    if request is not None and not request.called_directly and options.get("add_to_parent", True):
        request.children.append(task_id)


def epoch(value: float | datetime.datetime | None, what: str) -> float | None:
    """Epoch seconds from a datetime (naive ones are UTC) or a number.

    Raises:
        ConfigurationError: ``value`` is neither.
    """
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    raise ConfigurationError(f"{what} must be a datetime or epoch seconds, not {value!r}")


def _check_size(message: Message, limit: int) -> None:
    size = len(message.encode())
    if size > limit:
        raise MessageTooLarge(
            f"{message.task}: message is {size} bytes, over message_max_bytes ({limit})"
        )


def _task_defaults(task: Task[Any, Any] | None) -> dict[str, Any]:
    if task is None:
        return {}
    values = {
        "queue": task.queue,
        "priority": task.priority,
        "expires": task.expires,
        "ignore_result": task.ignore_result,
        "time_limit": task.time_limit,
        "soft_time_limit": task.soft_time_limit,
    }
    return {k: v for k, v in values.items() if v is not None}


def _lineage(options: dict[str, Any]) -> dict[str, str | None]:
    """Parent and root ids: given, or those of the task running here (a call from a task)."""
    parent_id, root_id = sender_lineage(current_request())
    return {
        "parent_id": options.get("parent_id") or parent_id,
        "root_id": options.get("root_id") or root_id,
        "group_id": options.get("group_id"),
    }


def _priority(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
        raise ConfigurationError(f"priority must be an integer from 0 to 9, not {value!r}")
    return value


def _expiry(value: Any, now: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return epoch(value, "expires")
    seconds = to_seconds(value, "expires")
    return None if seconds is None else now + seconds
