"""Turning a task call into a message and putting it in the broker: options checked, routed,
timed, serialized, signed, published, with the middleware's publish hooks around.

``compression`` (or ``task_compression``) compresses the body (``celeriac.compression``).
``retry`` and ``retry_policy`` (or ``task_publish_retry`` and ``task_publish_retry_policy``)
say how a publish tries again while the broker cannot be reached, as Celery's do; without a
policy, a publish keeps trying with backoff. ``broker_publish_timeout`` bounds it either way.

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

from celeriac.brokers.base import Broker, PublishRetry
from celeriac.compression import compression_name
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
        "compression",
        "retry",
        "retry_policy",
        "exchange",
        "routing_key",
    }
)
RETRY_POLICY_KEYS = frozenset({"max_retries", "interval_start", "interval_step", "interval_max"})
NO_RETRY = PublishRetry(max_retries=0)


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
    compression: str | None
    publish_retry: bool
    retry_policy: Mapping[str, Any] | None
    publish_timeout: float

    @classmethod
    def from_settings(cls, conf: Settings) -> SendDefaults:
        """Read them from the app's settings.

        Raises:
            ConfigurationError: an unknown ``task_compression``, or a bad
                ``task_publish_retry_policy``.
        """
        policy = conf.task_publish_retry_policy
        if policy is not None:
            publish_retry(True, policy, None)  # checked now, not at the first send
        return cls(
            queue=conf.task_default_queue,
            priority=conf.task_default_priority,
            ignore_result=bool(conf.task_ignore_result),
            max_bytes=int(conf.message_max_bytes),
            compression=compression_name(conf.task_compression),
            publish_retry=conf.task_publish_retry is not False,
            retry_policy=policy,
            publish_timeout=conf.seconds("broker_publish_timeout") or 10.0,
        )


def publish_retry(
    retry: object, policy: object, defaults: Mapping[str, Any] | None
) -> PublishRetry | None:
    """The ``PublishRetry`` for a send's ``retry`` and ``retry_policy`` (over the
    ``task_publish_retry_policy`` in ``defaults``); None: no policy anywhere, the broker's own
    backoff.

    Raises:
        ConfigurationError: a policy that is not a dict of Celery's keys with numbers.
    """
    if not isinstance(retry, bool):
        raise ConfigurationError(f"retry must be True or False, not {retry!r}")
    if not retry:
        return NO_RETRY
    if policy is None and defaults is None:
        return None
    if policy is not None and not isinstance(policy, Mapping):
        raise ConfigurationError(f"retry_policy must be a dict, not {policy!r}")
    merged = {**(defaults or {}), **(policy or {})}
    unknown = sorted(set(merged) - RETRY_POLICY_KEYS)
    if unknown:
        raise ConfigurationError(
            f"unknown retry_policy key(s): {', '.join(map(str, unknown))} "
            f"(known: {', '.join(sorted(RETRY_POLICY_KEYS))})"
        )
    max_retries = merged.get("max_retries", 3)
    if max_retries is not None and (
        isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0
    ):
        raise ConfigurationError(
            f"retry_policy max_retries must be a count or None, not {max_retries!r}"
        )
    intervals = {}
    for key in ("interval_start", "interval_step", "interval_max"):
        if key in merged:
            seconds = to_seconds(merged[key], f"retry_policy {key}")
            if seconds is None or seconds < 0:
                raise ConfigurationError(f"retry_policy {key} must be 0 or more seconds")
            intervals[key] = seconds
    return PublishRetry(max_retries=max_retries, **intervals)


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
        self.router = Router(conf.task_routes, conf.task_queues)
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
        self.retry_for(given)  # a bad policy fails before anything is built
        route = self.router.route(name, tuple(args), kwargs, given)
        call = {**route, **task_defaults, **given}
        message = self._build(name, args, kwargs, call, lineage)
        self.middleware.before_publish(message)
        message = message.signed(self.serializer)
        limit = self.defaults.max_bytes
        size = len(message.encode())
        if size > limit:
            raise MessageTooLarge(
                f"{name}: message is {size} bytes, over message_max_bytes ({limit})"
            )
        if len(message.body) > limit:  # the worker refuses a body that decompresses past it
            raise MessageTooLarge(
                f"{name}: arguments are {len(message.body)} bytes before compression, over "
                f"message_max_bytes ({limit})"
            )
        return message

    def retry_for(self, options: Mapping[str, Any]) -> PublishRetry | None:
        """How a publish with these send options tries again (None: the broker's backoff).

        Raises:
            ConfigurationError: a bad ``retry`` or ``retry_policy``.
        """
        defaults = self.defaults
        retry = options.get("retry")
        return publish_retry(
            defaults.publish_retry if retry is None else retry,
            options.get("retry_policy"),
            defaults.retry_policy,
        )

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
            queue=self.router.queue_of(call) or defaults.queue,
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
            compression=compression_name(call.get("compression", defaults.compression)),
        )

    def publish(
        self, messages: Sequence[Message], options: Mapping[str, Any] | None = None
    ) -> None:
        """Enqueue built messages in one round trip, then run ``after_publish`` on each.
        ``options`` are the send options, for ``retry`` and ``retry_policy``.

        Raises:
            ConfigurationError: a bad ``retry`` or ``retry_policy``.
            PublishError: the messages were not enqueued.
        """
        retry = self.retry_for(options or {})
        if retry is not None:
            self.broker.publish_retrying(messages, retry, timeout=self.defaults.publish_timeout)
        elif len(messages) == 1:
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
