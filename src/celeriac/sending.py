"""Turning a task call into a message and putting it in the broker: options checked, routed,
timed, serialized, signed, published, with the middleware's publish hooks around.

The app builds one ``Sender`` for each version of its settings and sends everything through it
(``delay()``, workflows, beat), so a call means the same whichever way it is sent. A sender
takes plain inputs: the call's options, already merged with its task's defaults, and the
lineage of the task sending it (gathered by the app); it imports nothing of the app layer.
"""

from __future__ import annotations

import datetime
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celeriac.brokers.base import Broker
from celeriac.config import Settings, to_seconds
from celeriac.exceptions import ConfigurationError, MessageTooLarge
from celeriac.message import Message
from celeriac.middleware import MiddlewareStack
from celeriac.router import Router
from celeriac.serialization import Serializer

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


def check_send_options(options: Mapping[str, Any]) -> None:
    """Raise if ``options`` holds a name that ``apply_async`` does not know.

    Raises:
        ConfigurationError: naming the unknown options.
    """
    unknown = sorted(set(options) - SEND_OPTIONS)
    if unknown:
        raise ConfigurationError(f"unknown option(s) for sending a task: {', '.join(unknown)}")


@dataclass(frozen=True)
class SendDefaults:
    """The settings every call reads, taken once per version of the app's settings."""

    queue: str
    priority: int
    ignore_result: bool
    max_bytes: int

    @classmethod
    def from_settings(cls, conf: Settings) -> SendDefaults:
        """Read them from the app's settings."""
        return cls(
            queue=conf.task_default_queue,
            priority=conf.task_default_priority,
            ignore_result=bool(conf.task_ignore_result),
            max_bytes=int(conf.message_max_bytes),
        )


class Sender:
    """Builds and publishes the messages of one app; see the module docstring.

    Raises:
        ConfigurationError: ``task_routes`` is malformed.
    """

    def __init__(
        self,
        broker: Broker,
        serializer: Serializer,
        middleware: MiddlewareStack,
        conf: Settings,
    ) -> None:
        self.broker = broker
        self.serializer = serializer
        self.middleware = middleware
        self.defaults = SendDefaults.from_settings(conf)
        self.router = Router(conf.task_routes)
        self.version = conf.version

    def message(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: Mapping[str, Any],
        *,
        task_defaults: Mapping[str, Any],
        lineage: tuple[str | None, str | None] = (None, None),
    ) -> Message:
        """The signed message for one call, routed and checked, ready to publish.

        ``options`` win over ``task_defaults`` (the task's own options), which win over
        ``task_routes``; ``lineage`` is the parent and root ids of the task sending it, used
        when the options name none. ``countdown`` and relative ``expires`` count from the
        broker's clock, the clock that decides when the broker hands the message out. The
        middleware's ``before_publish`` runs on the message before it is signed.

        Raises:
            ConfigurationError: a bad priority or time.
            TypeError: the arguments do not serialize.
            MessageTooLarge: the message is over ``message_max_bytes``.
        """
        given = {k: v for k, v in options.items() if v is not None}
        route = self.router.route(name, tuple(args), kwargs, given)
        call = {**route, **task_defaults, **given}
        message = self._build(name, args, kwargs, call, lineage)
        self.middleware.before_publish(message)
        message = message.signed(self.serializer)
        size = len(message.encode())
        if size > self.defaults.max_bytes:
            raise MessageTooLarge(
                f"{name}: message is {size} bytes, over message_max_bytes "
                f"({self.defaults.max_bytes})"
            )
        return message

    def _build(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        call: dict[str, Any],
        lineage: tuple[str | None, str | None],
    ) -> Message:
        try:
            body = self.serializer.dumps([list(args), kwargs])
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: arguments cannot be serialized: {exc}") from exc
        now = self.broker.clock()
        countdown = to_seconds(call.get("countdown"), "countdown")
        eta = now + countdown if countdown is not None else epoch(call.get("eta"), "eta")
        defaults = self.defaults
        return Message(
            id=str(call.get("task_id") or uuid.uuid4()),
            task=name,
            body=body,
            content_type=self.serializer.content_type,
            queue=str(call.get("queue") or defaults.queue),
            priority=_priority(call.get("priority", defaults.priority)),
            eta=eta,
            expires=_expiry(call.get("expires"), now),
            retries=int(call.get("retries", 0)),
            sent_at=now,
            headers=dict(call.get("headers") or {}),
            workflow=dict(call.get("workflow") or {}),
            ignore_result=bool(call.get("ignore_result", defaults.ignore_result)),
            time_limit=to_seconds(call.get("time_limit"), "time_limit"),
            soft_time_limit=to_seconds(call.get("soft_time_limit"), "soft_time_limit"),
            parent_id=call.get("parent_id") or lineage[0],
            root_id=call.get("root_id") or lineage[1],
            group_id=call.get("group_id"),
        )

    def publish(self, messages: Sequence[Message]) -> None:
        """Enqueue built messages in one round trip, then run ``after_publish`` on each.

        Raises:
            PublishError: the messages were not enqueued.
        """
        if len(messages) == 1:
            self.broker.publish(messages[0])
        else:
            self.broker.publish_many(messages)
        for message in messages:
            self.middleware.after_publish(message)

    def publish_once(self, message: Message, key: str, *, ttl: float) -> bool:
        """Enqueue ``message`` unless one was published under ``key`` (``Broker.publish_once``);
        True, and ``after_publish`` is run, when it was enqueued now.

        Raises:
            PublishError: the message was not enqueued.
        """
        sent = self.broker.publish_once(message, key, ttl=ttl)
        if sent:
            self.middleware.after_publish(message)
        return sent


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
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ConfigurationError(f"{what} must be a datetime or epoch seconds, not {value!r}")


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
