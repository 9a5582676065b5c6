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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celeriac.brokers.base import Broker, PublishRetry
from celeriac.compression import compression_name
from celeriac.config import Settings, to_seconds
from celeriac.exceptions import ConfigurationError, MessageTooLarge
from celeriac.ids import new_id, new_ids
from celeriac.message import Message, MessageTemplate
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
MAX_TEMPLATES = 1024  # tasks whose plain calls keep a message template (see Sender.message)
# A call sends one message: (its task id, or None for a new one; its args; its kwargs, which
# are only read: they may be the signature's own).
Call = tuple[Any, Sequence[Any], dict[str, Any]]


def _static(routes: Any) -> bool:
    """True when no ``task_routes`` entry is a function: a call's route then depends on its
    task's name and options only, not on its arguments."""
    if routes is None or isinstance(routes, Mapping):
        return True
    if callable(routes):
        return False
    return isinstance(routes, list | tuple) and not any(
        callable(r) and not isinstance(r, Mapping) for r in routes
    )


def check_send_options(options: Mapping[str, Any]) -> None:
    """Raise if ``options`` holds a name that ``apply_async`` does not know.

    Raises:
        ConfigurationError: naming the unknown options.
    """
    if options.keys() <= SEND_OPTIONS:
        return
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
        self._static_routes = _static(conf.task_routes)
        self._default_retry = self.retry_for({})  # a send without options: every delay()
        self._no_arguments = serializer.dumps([[], {}])  # the body of every call without any
        # name -> (task defaults, lineage, template) of the task's last call without options
        self._templates: dict[
            str, tuple[dict[str, Any], tuple[str | None, str | None], MessageTemplate]
        ] = {}

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

        A call without options (``delay()``) is stamped from a template its task keeps (what
        its calls share, routed, checked and encoded once), the same message built faster.

        Raises:
            ConfigurationError: a bad priority or time.
            TypeError: the arguments do not serialize.
            MessageTooLarge: the message is over ``message_max_bytes``.
        """
        given = {k: v for k, v in options.items() if v is not None} if options else {}
        if not given and self._static_routes:
            body = self._body(name, args, kwargs)
            now = self.broker.clock()
            template = self._template(name, task_defaults, lineage, now)
            return self._finish(name, template.message(new_id(), body, now), template)
        self.retry_for(given)  # a bad policy fails before anything is built
        route = self.router.route(name, tuple(args), kwargs, given)
        call = {**route, **task_defaults, **given}
        body = self._body(name, args, kwargs)
        message = self._envelope(name, body, call, lineage, self.broker.clock())
        return self._finish(name, message, None)

    def messages(
        self,
        name: str,
        calls: Sequence[Call],
        options: Mapping[str, Any],
        *,
        task_defaults: Mapping[str, Any],
        lineage: tuple[str | None, str | None] = (None, None),
    ) -> list[Message]:
        """The messages of many calls of one task with the same ``options`` (a group's
        members), as many :meth:`message` would build them, each with its own task id and
        arguments (``calls``); what they share is routed, checked and encoded once, and they
        are sent at one reading of the clock.

        Raises:
            ConfigurationError: a bad priority or time.
            TypeError: the arguments do not serialize.
            MessageTooLarge: a message is over ``message_max_bytes``.
        """
        if not self._static_routes:  # a router function sees each call's arguments
            return [
                self.message(
                    name,
                    args,
                    dict(kwargs),  # the caller's own: a router function may change its copy
                    {**options, "task_id": task_id},
                    task_defaults=task_defaults,
                    lineage=lineage,
                )
                for task_id, args, kwargs in calls
            ]
        given = {k: v for k, v in options.items() if v is not None and k != "task_id"}
        self.retry_for(given)
        fresh = iter(new_ids(sum(1 for call in calls if not call[0])))
        ids = [str(call[0]) if call[0] else next(fresh) for call in calls]
        bodies = [self._body(name, args, kwargs) for _, args, kwargs in calls]
        now = self.broker.clock()
        template = self._new_template(name, given, task_defaults, lineage, now)
        messages = template.messages(ids, bodies, now)
        for index, message in enumerate(messages):
            finished = self._finish(name, message, template)
            if finished is not message:  # signed
                messages[index] = finished
        return messages

    def _template(
        self,
        name: str,
        task_defaults: Mapping[str, Any],
        lineage: tuple[str | None, str | None],
        now: float,
    ) -> MessageTemplate:
        """The template of ``name``'s calls without options, kept while its task's defaults
        and the sender's lineage stay the same."""
        kept = self._templates.get(name)
        if kept is not None and kept[1] == lineage and kept[0] == task_defaults:
            return kept[2]
        template = self._new_template(name, {}, task_defaults, lineage, now)
        if len(self._templates) >= MAX_TEMPLATES:
            self._templates.clear()
        self._templates[name] = (dict(task_defaults), lineage, template)
        return template

    def _new_template(
        self,
        name: str,
        given: dict[str, Any],
        task_defaults: Mapping[str, Any],
        lineage: tuple[str | None, str | None],
        now: float,
    ) -> MessageTemplate:
        route = self.router.route(name, (), {}, given)  # static routes: arguments unread
        call = {**route, **task_defaults, **given}
        expires = call.get("expires")
        relative = expires is not None and not isinstance(expires, datetime.datetime)
        return MessageTemplate(
            self._envelope(name, b"", call, lineage, now),
            countdown=to_seconds(call.get("countdown"), "countdown"),
            expires_after=to_seconds(expires, "expires") if relative else None,
        )

    def _finish(self, name: str, message: Message, template: MessageTemplate | None) -> Message:
        """Run ``before_publish``, encode, sign and check the size of a built message."""
        self.middleware.before_publish(message)
        if template is not None:
            template.seal(message)
        if self.serializer.key:
            message = message.signed(self.serializer)
        limit = self.defaults.max_bytes
        if len(message.encode()) > limit or len(message.body) > limit:
            _too_large(name, message, limit)
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

    def _body(self, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> bytes:
        if not args and not kwargs:
            return self._no_arguments
        try:
            return self.serializer.dumps([list(args), kwargs])
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: arguments cannot be serialized: {exc}") from exc

    def _envelope(
        self,
        name: str,
        body: bytes,
        call: dict[str, Any],
        lineage: tuple[str | None, str | None],
        now: float,
    ) -> Message:
        countdown = to_seconds(call.get("countdown"), "countdown")
        eta = now + countdown if countdown is not None else epoch(call.get("eta"), "eta")
        defaults = self.defaults
        return Message(
            id=str(call.get("task_id") or new_ids(1)[0]),
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
        retry = self.retry_for(options) if options else self._default_retry
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


def _too_large(name: str, message: Message, limit: int) -> None:
    """Raise for a message over ``message_max_bytes``, as sent or its body uncompressed.

    Raises:
        MessageTooLarge: always.
    """
    size = len(message.encode())
    if size > limit:
        raise MessageTooLarge(f"{name}: message is {size} bytes, over message_max_bytes ({limit})")
    # the worker refuses a body that decompresses past it
    raise MessageTooLarge(
        f"{name}: arguments are {len(message.body)} bytes before compression, over "
        f"message_max_bytes ({limit})"
    )


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
