"""Result backend implementations; ``create_backend`` picks one by URL scheme."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac.backends.base import ResultBackend, ResultRecord
from celeriac.exceptions import ConfigurationError
from celeriac.urls import mask_url, scheme_of

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "sentinel")


def create_backend(url: str, options: Mapping[str, Any] | None = None) -> ResultBackend:
    """Build the result backend that ``url`` names.

    ``options`` are the app's ``broker_transport_options`` (the Redis backend reads its key
    prefix and socket timeouts there).

    Raises:
        ConfigurationError: the URL names no known backend, or is malformed, or the package
            its backend needs is not installed.
    """
    scheme = scheme_of(url)
    if scheme == "memory":
        from celeriac.backends.memory import named_backend

        return named_backend(url.partition("://")[2])
    if scheme == "sqlite":
        from celeriac.backends.sqlite import SqliteBackend
        from celeriac.sqlite_db import parse_sqlite_url

        try:
            return SqliteBackend(parse_sqlite_url(url))
        except ValueError as exc:
            raise ConfigurationError(f"bad result backend URL: {exc}") from None
    if scheme in REDIS_SCHEMES:
        from celeriac.backends.redis import RedisBackend
        from celeriac.redis_connect import RedisOptions

        return RedisBackend(url, RedisOptions.from_settings(options))
    raise ConfigurationError(
        f"unknown result backend URL {mask_url(url)!r}: the scheme must be one of "
        + ", ".join(f"{s}://" for s in ("memory", "sqlite", *REDIS_SCHEMES))
    )


__all__ = ["ResultBackend", "ResultRecord", "create_backend"]
