"""Broker implementations, one module each; ``create_broker`` picks one by URL scheme."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from celeriac.brokers.base import Broker, DeadLetter, Delivery
from celeriac.exceptions import ConfigurationError
from celeriac.urls import REDIS_SCHEMES, build_from_url, mask_url, scheme_of

# RabbitMQ's URLs: here, so that choosing a store imports no py-amqp.
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def create_broker(
    url: str, options: Mapping[str, Any] | None = None, *, publish_timeout: float | None = None
) -> Broker:
    """Build the broker that ``url`` names.

    ``options`` are the app's ``broker_transport_options`` for brokers that take some;
    ``publish_timeout`` bounds how long a publish may wait for an unreachable broker.

    Raises:
        ConfigurationError: the URL names no known broker, or is malformed, or the package
            its broker needs is not installed.
    """
    builders: dict[str, Callable[[str], Broker]] = {
        "memory": _memory,
        "sqlite": lambda url: _sqlite(url, publish_timeout),
        **dict.fromkeys(REDIS_SCHEMES, lambda url: _redis(url, options, publish_timeout)),
        **dict.fromkeys(AMQP_SCHEMES, lambda url: _amqp(url, options, publish_timeout)),
    }
    return build_from_url(url, "broker", builders)


def results_url(broker_url: str) -> str:
    """The result backend to use when none is given: the broker's own store.

    Raises:
        ConfigurationError: the broker keeps no results (RabbitMQ); the message says which
            backends can be used.
    """
    if scheme_of(broker_url) in AMQP_SCHEMES:
        raise ConfigurationError(
            f"the broker {mask_url(broker_url)!r} (RabbitMQ) cannot store task results: give"
            " a result backend, e.g. Celery('tasks', broker=..., backend='redis://localhost:6379/0')"
            " or result_backend = 'redis://...', 'rediss://...', 'sqlite:///results.db' or"
            " 'memory://' (one process only)"
        )
    return broker_url


# Each builder imports its broker's module only when its scheme is used.
def _memory(url: str) -> Broker:
    from celeriac.brokers.memory import named_broker

    return named_broker(url.partition("://")[2])


def _sqlite(url: str, publish_timeout: float | None) -> Broker:
    from celeriac._sqlite.database import parse_sqlite_url
    from celeriac.brokers.sqlite import SqliteBroker

    if publish_timeout is None:
        return SqliteBroker(parse_sqlite_url(url))
    return SqliteBroker(parse_sqlite_url(url), publish_timeout=publish_timeout)


def _redis(url: str, options: Mapping[str, Any] | None, publish_timeout: float | None) -> Broker:
    from celeriac._redis.connect import RedisOptions
    from celeriac.brokers.redis import RedisBroker

    settings = RedisOptions.from_settings(options)
    if publish_timeout is None:
        return RedisBroker(url, settings)
    return RedisBroker(url, settings, publish_timeout=publish_timeout)


def _amqp(url: str, options: Mapping[str, Any] | None, publish_timeout: float | None) -> Broker:
    from celeriac.brokers.amqp import AmqpBroker
    from celeriac.brokers.amqp_link import AmqpOptions

    settings = AmqpOptions.from_settings(options)
    if publish_timeout is None:
        return AmqpBroker(url, settings)
    return AmqpBroker(url, settings, publish_timeout=publish_timeout)


__all__ = ["AMQP_SCHEMES", "Broker", "DeadLetter", "Delivery", "create_broker", "results_url"]
