"""``Queue`` and ``Exchange``: the few kombu objects that Celery settings use, on celeriac's
queues.

celeriac sends a message to a queue by its name, and a queue exists once something is sent to
it: there is nothing to declare. A Celery project's ``task_queues`` still reads as it is::

    task_queues = (
        Queue('default', Exchange('default'), routing_key='default'),
        Queue('videos', Exchange('media'), routing_key='media.video'),
    )
    task_routes = {'tasks.encode': {'exchange': 'media', 'routing_key': 'media.video'}}

A route (or ``apply_async``) that gives a ``routing_key``, an ``exchange`` or both sends to the
queue of ``task_queues`` declared with them (``videos`` above); ``{'queue': 'videos'}`` and
``Queue`` objects work too. A worker without ``-Q`` consumes every queue of ``task_queues``.

What AMQP would do beyond one queue a message is not done, and is refused with an error that
says so: binding keys with wildcards (``'media.*'``, a topic exchange's patterns) and
``fanout`` or ``headers`` exchanges, which copy a message to several queues.
``queue_arguments`` (``{'x-max-priority': 10}``), ``durable`` and the like are accepted: every
queue has priorities 0-9 and is durable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from celeriac.exceptions import ConfigurationError

EXCHANGE_TYPES = ("direct", "topic")
NOT_SUPPORTED = ("fanout", "headers")


class Exchange:
    """Celery's (kombu's) ``Exchange``: a name that routes may give, with a type.

    Raises:
        ConfigurationError: a ``fanout`` or ``headers`` exchange, or an unknown type.
    """

    def __init__(self, name: str = "", type: str = "direct", **options: Any) -> None:
        if type in NOT_SUPPORTED:
            raise ConfigurationError(
                f"Exchange({name!r}, type={type!r}) is not supported: a {type} exchange copies "
                "a message to several queues, and a celeriac message goes to one queue"
            )
        if type not in EXCHANGE_TYPES:
            raise ConfigurationError(f"unknown exchange type {type!r}: choose from direct, topic")
        self.name = name
        self.type = type
        self.options = options  # durable, auto_delete, delivery_mode...: nothing to declare

    def __repr__(self) -> str:
        return f"<Exchange {self.name}({self.type})>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Exchange) and (self.name, self.type) == (other.name, other.type)

    def __hash__(self) -> int:
        return hash((self.name, self.type))


class Queue:
    """Celery's (kombu's) ``Queue``: a queue's name, and the exchange and routing key a
    route may name it by. ``exchange`` defaults to one named like the queue, and
    ``routing_key`` to the queue's name, as in kombu.

    Raises:
        ConfigurationError: an empty name, or a routing key with wildcards.
    """

    def __init__(
        self,
        name: str = "",
        exchange: Exchange | str | None = None,
        routing_key: str = "",
        *,
        queue_arguments: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a Queue needs a name, not {name!r}")
        if any(ch in routing_key for ch in "*#"):
            raise ConfigurationError(
                f"Queue({name!r}, routing_key={routing_key!r}): binding keys with wildcards "
                "(a topic exchange's patterns) are not supported; give each queue its own "
                "routing key, or route by queue name"
            )
        self.name = name
        if exchange is None:
            exchange = Exchange(name)
        self.exchange = Exchange(exchange) if isinstance(exchange, str) else exchange
        self.routing_key = routing_key or name
        self.queue_arguments = dict(queue_arguments or {})  # x-max-priority: always 0-9
        self.options = options  # durable, exclusive, auto_delete...: nothing to declare

    def __repr__(self) -> str:
        return f"<Queue {self.name} -> {self.exchange!r} -> {self.routing_key}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Queue) and (self.name, self.exchange, self.routing_key) == (
            other.name,
            other.exchange,
            other.routing_key,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.routing_key))


def declared_queues(setting: Any) -> list[Queue]:
    """The ``Queue`` objects of a ``task_queues`` value (a list, a tuple, a dict of them by
    name, or None); plain names are taken as ``Queue(name)``.

    Raises:
        ConfigurationError: an entry is neither a ``Queue`` nor a name.
    """
    if setting is None:
        return []
    entries: Iterable[Any] = setting.values() if isinstance(setting, Mapping) else setting
    if isinstance(setting, str | Queue):
        entries = [setting]
    queues = []
    for entry in entries:
        if isinstance(entry, str):
            entry = Queue(entry)
        if not isinstance(entry, Queue):
            raise ConfigurationError(
                f"task_queues entries must be Queue objects or queue names, not {entry!r}"
            )
        queues.append(entry)
    return queues


def queue_names(setting: Any) -> list[str]:
    """The names of the queues a ``task_queues`` value declares, in order.

    Raises:
        ConfigurationError: an entry is neither a ``Queue`` nor a name.
    """
    return list(dict.fromkeys(queue.name for queue in declared_queues(setting)))


def queue_for(
    queues: Iterable[Queue], exchange: Exchange | str | None, routing_key: str | None
) -> str:
    """The name of the declared queue that ``exchange`` and ``routing_key`` (either may be
    None) lead to.

    Raises:
        ConfigurationError: no declared queue, or more than one, is bound that way.
    """
    exchange_name = exchange.name if isinstance(exchange, Exchange) else exchange
    found = [
        queue
        for queue in queues
        if (routing_key is None or queue.routing_key == routing_key)
        and (exchange_name is None or queue.exchange.name == exchange_name)
    ]
    names = list(dict.fromkeys(queue.name for queue in found))
    wanted = f"exchange={exchange_name!r}, routing_key={routing_key!r}"
    if not names:
        raise ConfigurationError(
            f"no queue of task_queues is bound to {wanted}: declare one "
            "(Queue(name, Exchange(...), routing_key=...)) or route by queue name"
        )
    if len(names) > 1:
        raise ConfigurationError(
            f"several queues of task_queues are bound to {wanted} ({', '.join(names)}): a "
            "celeriac message goes to one queue; give a routing_key that names one"
        )
    return names[0]


__all__ = ["Exchange", "Queue", "declared_queues", "queue_for", "queue_names"]
