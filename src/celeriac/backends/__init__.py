"""Result backend implementations; ``create_backend`` picks one by URL scheme."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from celeriac.backends.base import ResultBackend, ResultRecord
from celeriac.urls import REDIS_SCHEMES, build_from_url


def create_backend(url: str, options: Mapping[str, Any] | None = None) -> ResultBackend:
    """Build the result backend that ``url`` names.

    ``options`` are the app's ``broker_transport_options`` (the Redis backend reads its key
    prefix and socket timeouts there).

    Raises:
        ConfigurationError: the URL names no known backend, or is malformed, or the package
            its backend needs is not installed.
    """
    builders: dict[str, Callable[[str], ResultBackend]] = {
        "memory": _memory,
        "sqlite": _sqlite,
        **dict.fromkeys(REDIS_SCHEMES, lambda url: _redis(url, options)),
    }
    return build_from_url(url, "result backend", builders)


# Each builder imports its backend's module only when its scheme is used.
def _memory(url: str) -> ResultBackend:
    from celeriac.backends.memory import named_backend

    return named_backend(url.partition("://")[2])


def _sqlite(url: str) -> ResultBackend:
    from celeriac._sqlite.database import parse_sqlite_url
    from celeriac.backends.sqlite import SqliteBackend

    return SqliteBackend(parse_sqlite_url(url))


def _redis(url: str, options: Mapping[str, Any] | None) -> ResultBackend:
    from celeriac._redis.connect import RedisOptions
    from celeriac.backends.redis import RedisBackend

    return RedisBackend(url, RedisOptions.from_settings(options))


__all__ = ["ResultBackend", "ResultRecord", "create_backend"]
