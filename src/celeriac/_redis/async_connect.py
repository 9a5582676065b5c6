"""redis-py's asyncio client for a Redis server: its connection pools, one set per event loop.

The Redis broker and backend reach their server from coroutines through :func:`clients_for`,
which gives the running loop its own ``redis.asyncio.Redis`` clients for the
:class:`RedisDatabase` (the same URL and options as the thread-side client of ``connect.py``):
an asyncio connection belongs to the loop that opened it, so two loops (``asyncio.run()``
twice, or loops in two threads) never share one. A loop has two: one for commands that answer
at once (publishes, reads), whose ``COMMAND_CONNECTIONS`` connections many coroutines take
turns on, and one for blocking waits (a ``BLPOP`` holds its connection), which opens a
connection for each coroutine waiting at the same time and keeps them for the next waits.

A loop's clients are closed when the loop shuts down: they register an asynchronous generator
with the loop, and ``asyncio.run()`` (or any runner that calls ``loop.shutdown_asyncgens()``,
as uvicorn's does) closes that generator before closing the loop, which closes the pool's
connections on the loop that opened them. Clients of loops that are gone are dropped with them
(a ``WeakKeyDictionary`` keyed by the loop).

Only plain, TLS and Unix-socket URLs have an asyncio client here; a Sentinel URL gets None, and
its callers fall back to the thread-side client (``Broker.apublish_many``'s default).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac._redis.connect import TRANSIENT, RedisOptions, redis
from celeriac._redis.scripts import Command
from celeriac.exceptions import ConfigurationError
from celeriac.urls import REDIS_SCHEMES, mask_url, scheme_of

if TYPE_CHECKING:
    from celeriac._redis.database import RedisDatabase

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
except ImportError as exc:  # pragma: no cover - redis-py 5 and later ship redis.asyncio
    raise ConfigurationError(
        f"Redis from asyncio needs redis.asyncio ({exc}): pip install 'celeriac[redis]'"
    ) from None

_pack_hiredis: Callable[[Any], bytes] | None
try:
    from hiredis import pack_command as _pack_hiredis
except ImportError:  # pragma: no cover - hiredis comes with celeriac[redis]
    _pack_hiredis = None

AsyncRedis = aioredis.Redis
# Connections a loop's publishes and reads share: past a few, more connections cost more to
# open than they save (2,000 coroutines publishing at once would otherwise open 2,000).
COMMAND_CONNECTIONS = 16


def connect_async(
    url: str, options: RedisOptions, *, max_connections: int | None = None
) -> aioredis.Redis:
    """An asyncio client with its own pool for ``url``, set up as ``connect()`` sets up the
    thread-side one (timeouts, keep-alive, one retry after a dropped connection, RESP2).
    With ``max_connections``, a command waits for a free connection rather than open more.

    Raises:
        ConfigurationError: the URL is malformed or names no plain Redis.
    """
    defaults: dict[str, Any] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_connect_timeout,
        "socket_keepalive": True,
        "health_check_interval": options.health_check_interval,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 1, (redis.ConnectionError,)),
        "protocol": 2,
    }
    if scheme_of(url) not in REDIS_SCHEMES:
        raise ConfigurationError(f"no asyncio client for {mask_url(url)!r}")
    try:
        if max_connections is None:
            pool = aioredis.ConnectionPool.from_url(url, **defaults)
        else:
            pool = aioredis.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=None, **defaults
            )
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"bad Redis URL {mask_url(url)!r}: {exc}") from None
    return aioredis.Redis(connection_pool=pool)


@dataclass(frozen=True)
class _LoopClients:
    commands: aioredis.Redis
    waits: aioredis.Redis


async def _closing(clients: _LoopClients) -> AsyncIterator[None]:
    """Suspended for the loop's life; closed by ``loop.shutdown_asyncgens()``, it closes the
    clients' connections on that loop."""
    try:
        yield
    finally:
        try:
            await clients.commands.aclose(close_connection_pool=True)
        finally:
            await clients.waits.aclose(close_connection_pool=True)


class LoopClients:
    """The asyncio clients of one server, one per event loop (see the module docstring)."""

    def __init__(self, url: str, options: RedisOptions) -> None:
        self._url = url
        self._options = options
        self._lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[_LoopClients, AsyncIterator[None]]
        ] = weakref.WeakKeyDictionary()

    async def client(self) -> aioredis.Redis:
        """The running loop's client for commands that answer at once (a publish, a ``GET``):
        at most ``COMMAND_CONNECTIONS`` connections, which many coroutines take turns on.

        Raises:
            ConfigurationError: the URL has no asyncio client.
            RuntimeError: no event loop is running.
        """
        return (await self._of_loop()).commands

    async def waiting_client(self) -> aioredis.Redis:
        """The running loop's client for blocking waits (``BLPOP``): a connection for each
        coroutine that waits, so that waits never hold up the commands.

        Raises:
            ConfigurationError: the URL has no asyncio client.
            RuntimeError: no event loop is running.
        """
        return (await self._of_loop()).waits

    async def _of_loop(self) -> _LoopClients:
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._clients.get(loop)
        if found is not None:
            return found[0]
        clients = _LoopClients(
            connect_async(self._url, self._options, max_connections=COMMAND_CONNECTIONS),
            connect_async(self._url, self._options),
        )
        closer = _closing(clients)
        with self._lock:
            self._clients[loop] = (clients, closer)
        await anext(closer)  # registered with this loop's shutdown_asyncgens from here on
        return clients


async def execute(client: aioredis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one write on a connection of ``client``'s pool and read every
    reply; an error reply is returned in its place (it was read whole), as
    ``RedisDatabase.execute`` does on the thread side.

    The commands are packed once (by hiredis when it is there) and sent below redis-py's
    ``execute_command``, whose per-call bookkeeping cost more than the round trip's client
    work. A connection found dead (the server restarted) is dropped and the commands sent once
    more; a connection whose replies were not all read (an error, a cancelled coroutine) is
    closed, never given back half-read.

    Raises:
        redis.RedisError: Redis failed (not an error reply).
    """
    pool: Any = client.connection_pool  # redis-py leaves the pool untyped
    packed: bytes | None = None
    for attempt in (1, 2):
        conn = await pool.get_connection()
        try:
            if packed is None:
                packed = _pack(conn, commands)
            await conn.send_packed_command(packed)
            return [await _read(conn) for _ in commands]
        except TRANSIENT:
            await conn.disconnect()
            if attempt == 2:
                raise
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
    raise AssertionError("unreachable")


async def _read(conn: Any) -> Any:
    try:
        return await conn.read_response()
    except redis.ResponseError as error:
        if isinstance(error, TRANSIENT):  # READONLY: a fail-over, as a dropped connection
            raise
        return error


def _pack(conn: Any, commands: Sequence[Command]) -> bytes:
    if _pack_hiredis is not None:
        return b"".join(_pack_hiredis(command) for command in commands)
    return b"".join(b"".join(conn.pack_command(*command)) for command in commands)


def raise_errors(replies: list[Any]) -> list[Any]:
    """The replies, after raising the first error reply among them.

    Raises:
        redis.ResponseError: one of the replies is an error.
    """
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise reply
    return replies


_clients: weakref.WeakKeyDictionary[RedisDatabase, LoopClients | None] = weakref.WeakKeyDictionary()
_clients_lock = threading.Lock()


def clients_for(db: RedisDatabase) -> LoopClients | None:
    """The per-loop asyncio clients of ``db``'s server; None for a URL that has none (a
    Sentinel's: its callers use the thread-side client)."""
    with _clients_lock:
        if db not in _clients:
            url = db.address
            supported = scheme_of(url) in REDIS_SCHEMES
            _clients[db] = LoopClients(url, db.options) if supported else None
        return _clients[db]


__all__ = ["AsyncRedis", "LoopClients", "clients_for", "connect_async", "execute", "raise_errors"]
