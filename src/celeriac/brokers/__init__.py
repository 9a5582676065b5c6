"""Broker implementations, one module each; ``create_broker`` picks one by URL scheme."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac.brokers.base import Broker, DeadLetter, Delivery
from celeriac.exceptions import ConfigurationError
from celeriac.urls import mask_url, scheme_of

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "sentinel")
SCHEMES = ("memory", "sqlite", *REDIS_SCHEMES)


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
    scheme = scheme_of(url)
    if scheme == "memory":
        from celeriac.brokers.memory import named_broker

        return named_broker(url.partition("://")[2])
    if scheme == "sqlite":
        from celeriac.brokers.sqlite import SqliteBroker
        from celeriac.sqlite_db import parse_sqlite_url

        try:
            return SqliteBroker(parse_sqlite_url(url))
        except ValueError as exc:
            raise ConfigurationError(f"bad broker URL: {exc}") from None
    if scheme in REDIS_SCHEMES:
        from celeriac.brokers.redis import RedisBroker
        from celeriac.redis_connect import RedisOptions

        settings = RedisOptions.from_settings(options)
        if publish_timeout is None:
            return RedisBroker(url, settings)
        return RedisBroker(url, settings, publish_timeout=publish_timeout)
    raise ConfigurationError(
        f"unknown broker URL {mask_url(url)!r}: the scheme must be one of "
        + ", ".join(f"{s}://" for s in SCHEMES)
    )


__all__ = ["Broker", "DeadLetter", "Delivery", "create_broker"]
