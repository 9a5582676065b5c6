"""Reaching a Redis server: URLs, connection options, the client, and Redis's clock.

URLs (passwords are masked with :func:`celeriac.urls.mask_url` wherever a URL is shown):

- ``redis://[[user]:password@]host[:port][/db]``: plain TCP; ``user`` is an ACL user.
- ``rediss://...``: TLS. Certificates are checked (``ssl_cert_reqs=required``) unless the query
  says otherwise; redis-py's query options apply (``?ssl_ca_certs=/path/ca.pem``,
  ``ssl_certfile``, ``ssl_keyfile``, ``ssl_check_hostname``...).
- ``unix:///path/to/redis.sock?db=0``: a local socket.
- ``redis+sentinel://[[user]:password@]host1:26379,host2:26379/<service>[/db]`` (or
  ``sentinel://``; hosts may also be separated by ``;``): the master of ``<service>`` as the
  Sentinels name it, found again after a fail-over. ``<service>`` may instead come from
  ``broker_transport_options['master_name']`` (Celery's name), the path then holding only the
  db. The password is the master's; Sentinels that need one get it from
  ``broker_transport_options['sentinel_kwargs'] = {'password': ...}``.

The ``redis`` package is imported here only (the rest of ``_redis`` and the Redis broker and
backend get it through this module), so a missing ``redis`` package fails only when a Redis URL
is used.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from celeriac.exceptions import ConfigurationError
from celeriac.urls import REDIS_SCHEMES, SENTINEL_SCHEMES, mask_url, scheme_of

try:
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry
    from redis.sentinel import Sentinel
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ConfigurationError(
        f"Redis needs the redis package ({exc}): pip install 'celeriac[redis]'"
    ) from None

RedisError = redis.RedisError
# Errors after which the same call may succeed once Redis is back (or a fail-over is done, or
# the restarted server has loaded its data); a refused password is not one of them.
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)
REFUSED = (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)
CLOCK_RESYNC = 60.0  # seconds between two reads of Redis's clock by RedisClock


@dataclass(frozen=True)
class RedisOptions:
    """The Redis knobs of ``broker_transport_options`` (other keys there are not ours)."""

    global_keyprefix: str = ""
    socket_timeout: float = 5.0
    socket_connect_timeout: float = 3.0
    health_check_interval: float = 25.0
    sentinel_kwargs: Mapping[str, Any] | None = None
    master_name: str | None = None

    @classmethod
    def from_settings(cls, options: Mapping[str, Any] | None) -> RedisOptions:
        """Options from ``broker_transport_options``.

        Raises:
            ConfigurationError: a value of the wrong type.
        """
        options = options or {}
        values: dict[str, Any] = {}
        for name in ("socket_timeout", "socket_connect_timeout", "health_check_interval"):
            if options.get(name) is not None:
                values[name] = _positive(options[name], name)
        prefix = options.get("global_keyprefix", "")
        if not isinstance(prefix, str):
            raise ConfigurationError(f"global_keyprefix must be a string, not {prefix!r}")
        sentinel_kwargs = options.get("sentinel_kwargs")
        if sentinel_kwargs is not None and not isinstance(sentinel_kwargs, Mapping):
            raise ConfigurationError("sentinel_kwargs must be a dict of connection options")
        master_name = options.get("master_name")
        if master_name is not None and not isinstance(master_name, str):
            raise ConfigurationError(f"master_name must be a string, not {master_name!r}")
        return cls(
            global_keyprefix=prefix,
            sentinel_kwargs=sentinel_kwargs,
            master_name=master_name,
            **values,
        )

    def key(self) -> tuple[Any, ...]:
        """What tells two option sets apart, for sharing one :class:`RedisDatabase`."""
        return (
            self.global_keyprefix,
            self.socket_timeout,
            self.socket_connect_timeout,
            self.health_check_interval,
            repr(sorted((self.sentinel_kwargs or {}).items())),
            self.master_name,
        )


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def connect(url: str, options: RedisOptions) -> redis.Redis:
    """A client (with its own connection pool) for the server that ``url`` names.

    Nothing is sent until the first command. Each pooled connection retries a command once
    after a dropped connection (so a restarted server is reconnected to transparently); other
    retries are the caller's.

    Raises:
        ConfigurationError: the URL is malformed or names no Redis.
    """
    defaults: dict[str, Any] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_connect_timeout,
        "socket_keepalive": True,
        "health_check_interval": options.health_check_interval,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 1, (redis.ConnectionError,)),
        "protocol": 2,
    }
    scheme = scheme_of(url)
    if scheme == "unix":  # redis-py's Unix-socket connection takes no keep-alive option
        del defaults["socket_keepalive"]
    try:
        if scheme in SENTINEL_SCHEMES:
            return _sentinel_master(url, options, defaults)
        if scheme not in REDIS_SCHEMES:
            known = ", ".join(f"{s}://" for s in REDIS_SCHEMES)
            raise ValueError(f"the scheme must be one of {known}")
        pool = redis.ConnectionPool.from_url(url, **defaults)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"bad Redis URL {mask_url(url)!r}: {exc}") from None
    return redis.Redis(connection_pool=pool)


def _sentinel_master(url: str, options: RedisOptions, defaults: dict[str, Any]) -> redis.Redis:
    # Kombu's form names each Sentinel with its own scheme: "sentinel://h1:26379;sentinel://h2".
    rest = re.sub(r";\s*(?:redis\+)?sentinel://", ",", url.partition("://")[2])
    netloc, _, path = rest.partition("/")
    path, _, query = path.partition("?")
    credentials, _, hosts = netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts or (len(parts) == 1 and parts[0].isdigit()):
        parts.insert(0, options.master_name or "")
    if not hosts or not parts[0] or len(parts) > 2:
        raise ValueError(
            "expected redis+sentinel://host:port[,host:port...]/<service>[/db]"
            " (or the service in broker_transport_options['master_name'])"
        )
    if query:
        raise ValueError("a Sentinel URL takes no query options: use broker_transport_options")
    kwargs = dict(defaults)
    kwargs["db"] = int(parts[1]) if len(parts) == 2 else 0
    if username:
        kwargs["username"] = unquote(username)
    if password:
        kwargs["password"] = unquote(password)
    sentinel_kwargs = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_connect_timeout,
        "protocol": 2,
        **(options.sentinel_kwargs or {}),
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        [_host_port(h) for h in hosts.replace(";", ",").split(",")],
        sentinel_kwargs=sentinel_kwargs,
        **kwargs,
    )
    client: redis.Redis = sentinel.master_for(parts[0])  # type: ignore[no-untyped-call]
    return client


def _host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    return host, int(port or 26379)


def as_bytes(value: object) -> bytes:
    """A reply as bytes (replies are bytes: clients are made without ``decode_responses``).

    Raises:
        TypeError: the reply is not a string.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"expected a string reply from Redis, not {type(value).__name__}")


def flags_of(reply: object) -> list[bool]:
    """The '1'/'0' string that ``store.lua``, ``settle.lua`` and ``extend.lua`` return (one
    character per item), as booleans.

    Raises:
        TypeError: the reply is not a string.
    """
    return [flag == ord("1") for flag in as_bytes(reply)]


def script_now(clock: Callable[[], float] | None) -> str:
    """The ``now`` argument of every script: '' tells the script to read Redis's own clock
    (``TIME``); a test clock's reading is passed as it is."""
    return "" if clock is None else repr(float(clock()))


class RedisClock:
    """Redis's clock, read from this process: ``time.time()`` plus the offset last measured
    with ``TIME`` (once a minute).

    ETAs and expiry times that a client computes (``countdown=10`` becomes "Redis time + 10")
    are then compared, inside Redis, with the same clock that the scripts read, so a host whose
    clock is off by minutes still runs a countdown on time. When Redis cannot be reached, the
    last offset (at first: none) is used, and Redis is asked again a second later.

    ``read_time`` asks Redis for its time (epoch seconds); it bounds its own wait.
    """

    def __init__(self, read_time: Callable[[], float]) -> None:
        self._read_time = read_time
        self._offset = 0.0
        self._synced_at: float | None = None

    def due(self) -> bool:
        """Whether the next reading asks Redis (the first one, then once a minute)."""
        synced = self._synced_at
        return synced is None or time.monotonic() - synced >= CLOCK_RESYNC

    def __call__(self) -> float:
        if self.due():
            self._sync(time.monotonic())
        return time.time() + self._offset

    def _sync(self, now: float) -> None:
        # Marked first, so that a failing Redis is asked again only a second later.
        self._synced_at = now - CLOCK_RESYNC + 1.0
        try:
            before = time.time()
            redis_now = self._read_time()
            after = time.time()
        except redis.RedisError:
            return
        self._offset = redis_now - (before + after) / 2
        self._synced_at = now


__all__ = [
    "REFUSED",
    "TRANSIENT",
    "RedisClock",
    "RedisError",
    "RedisOptions",
    "as_bytes",
    "connect",
    "flags_of",
    "redis",
    "script_now",
]
