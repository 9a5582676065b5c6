"""Broker implementations, one module each; ``create_broker`` picks one by URL scheme."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac.brokers.base import Broker, DeadLetter, Delivery
from celeriac.exceptions import ConfigurationError
from celeriac.urls import mask_url, scheme_of

SCHEMES = ("memory", "sqlite", "redis", "rediss", "redis+sentinel")


def create_broker(url: str, options: Mapping[str, Any] | None = None) -> Broker:
    """Build the broker that ``url`` names.

    ``options`` are the app's ``broker_transport_options`` for brokers that take some.

    Raises:
        ConfigurationError: the URL names no known broker, or is malformed.
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
    raise ConfigurationError(
        f"unknown broker URL {mask_url(url)!r}: the scheme must be one of "
        + ", ".join(f"{s}://" for s in SCHEMES if s in ("memory", "sqlite"))
    )


__all__ = ["Broker", "DeadLetter", "Delivery", "create_broker"]
