"""Choosing a queue for a task call from ``task_routes``, as Celery does.

``task_routes`` may be a dict (task names, glob patterns such as ``'tasks.*'`` or compiled
regular expressions mapped to options, or to a queue name), a list of ``(pattern, route)``
pairs (matched in their order), a router function ``(name, args, kwargs, options, task=None,
**kw) -> dict | None``, or a list of these, tried in order until one answers.

A route (or the call's options) may name its queue as Celery's do with AMQP: ``'queue'`` as a
name or a ``Queue``, or an ``'exchange'`` and ``'routing_key'`` that lead to a ``Queue`` of
``task_queues`` (``celeriac.queues``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from typing import Any

from celeriac.exceptions import ConfigurationError
from celeriac.queues import Queue, declared_queues, queue_for

RouterFunction = Callable[..., Mapping[str, Any] | str | None]


def _as_options(route: Mapping[str, Any] | str | None) -> dict[str, Any] | None:
    if route is None:
        return None
    if isinstance(route, str):
        return {"queue": route}
    if isinstance(route, Mapping):
        return dict(route)
    raise ConfigurationError(f"a route must be a queue name or a dict of options, not {route!r}")


def _entry(route: Any) -> Mapping[Any, Any] | RouterFunction:
    if isinstance(route, Mapping):
        return route
    if callable(route):
        function: RouterFunction = route
        return function
    if isinstance(route, list | tuple) and all(
        isinstance(pair, list | tuple) and len(pair) == 2 for pair in route
    ):
        return dict(route)  # Celery's ordered (pattern, route) pairs; a dict keeps the order
    raise ConfigurationError(
        "each task_routes entry must be a dict, a function, or a list of (pattern, route) "
        f"pairs, not {route!r}"
    )


class Router:
    """Applies ``task_routes`` to a task call.

    Raises:
        ConfigurationError: ``routes`` is not one of the forms in the module docstring.
    """

    def __init__(self, routes: Any, queues: Any = None) -> None:
        self.queues = declared_queues(queues)
        if routes is None:
            routes = []
        elif isinstance(routes, Mapping) or callable(routes):
            routes = [routes]
        elif not isinstance(routes, list | tuple):
            raise ConfigurationError("task_routes must be a dict, a function, or a list of them")
        self._routes: list[Mapping[Any, Any] | RouterFunction] = [_entry(r) for r in routes]

    def route(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any]:
        """The options that the first matching route gives (empty when none matches)."""
        for route in self._routes:
            if callable(route):
                found = _as_options(route(name, args, kwargs, options, task=None))
            else:
                found = _as_options(self._match(route, name))
            if found is not None:
                return found
        return {}

    def queue_of(self, call: Mapping[str, Any]) -> str | None:
        """The queue name a call's merged options lead to: its ``queue`` (a name or a
        ``Queue``), else the declared queue its ``exchange`` and ``routing_key`` name, else
        None (the default queue).

        Raises:
            ConfigurationError: an exchange or routing key that names no declared queue, or
                several.
        """
        queue = call.get("queue")
        if isinstance(queue, Queue):
            return queue.name
        if queue:
            return str(queue)
        exchange, routing_key = call.get("exchange"), call.get("routing_key")
        if not exchange and not routing_key:
            return None
        return queue_for(self.queues, exchange or None, routing_key or None)

    @staticmethod
    def _match(table: Mapping[Any, Any], name: str) -> Any:
        if name in table:
            return table[name]
        for pattern, route in table.items():
            if isinstance(pattern, re.Pattern):
                if pattern.match(name):
                    return route
            elif any(ch in pattern for ch in "*?[") and fnmatch.fnmatchcase(name, pattern):
                return route
        return None
