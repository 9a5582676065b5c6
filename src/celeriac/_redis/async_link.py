"""One connection to Redis on an event loop: ``Link``, an ``asyncio.Protocol`` of our own.

redis-py's asyncio client cost the asyncio side of celeriac three times the thread side's CPU
for the same round trip (a publish 110-180 us against 40-50 us, a wait 100-150 us against
30 us): every command took a lock and a condition of its pool, checked the socket for stray
bytes, created a task for ``asyncio.wait_for`` around each write and an ``asyncio.timeout``
around each reply read, read through a ``StreamReader``. A ``Link`` does what a round trip
needs and nothing more: the commands packed once (hiredis), written with one
``transport.write``, their replies parsed by hiredis as the bytes arrive (``data_received``)
and handed to the one future of the batch that asked for them.

Replies come back in the order the commands went out, so a link can carry the batches of many
coroutines one behind another (pipelining): the loop's commands share one link
(``async_connect.py``). A batch whose coroutine went away (cancelled) stays in line; its
replies are read and dropped, so the link is never left half-read. A batch that gets no reply
by its time (``until``) breaks the link: every batch on it fails with ``redis.TimeoutError``,
and the connection is closed (the replies still owed would be matched to the wrong batches).
One timer a link, not one a batch: it is armed for the soonest time of the batches in line and,
when it fires, checks them again.

Connecting is redis-py's reading of the URL (``ConnectionPool.from_url``: host and port, a
Unix socket's path, TLS and its ``ssl_*`` query options, the database, the credentials, a
client name), then our own socket (``loop.create_connection``) and handshake, in one write:
``AUTH``, ``CLIENT SETNAME``, ``SELECT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from celeriac._redis.connect import RedisOptions, redis
from celeriac._redis.scripts import Command
from celeriac.exceptions import ConfigurationError
from celeriac.urls import mask_url

try:
    import hiredis
    import redis.asyncio as aioredis
    from redis._parsers import BaseParser
    from redis.credentials import UsernamePasswordCredentialProvider
except ImportError as exc:  # pragma: no cover - celeriac[redis] brings redis and hiredis
    raise ConfigurationError(
        f"Redis from asyncio needs redis-py and hiredis ({exc}): pip install 'celeriac[redis]'"
    ) from None

_PENDING = object()  # hiredis's answer while a reply is not complete yet
_pack_command: Callable[[Any], bytes] = hiredis.pack_command


def pack(commands: Sequence[Command]) -> bytes:
    """The commands in Redis's wire format, in one buffer."""
    return b"".join(_pack_command(command) for command in commands)


@dataclass(frozen=True)
class Target:
    """How to reach a server and set up a connection to it, as redis-py reads its URL."""

    where: str  # for errors: host:port, or the socket's path
    host: str | None
    port: int | None
    path: str | None  # a Unix socket
    ssl: Any  # an ssl.SSLContext, or None
    db: int
    credentials: Any  # a redis-py CredentialProvider, or None
    client_name: str | None
    connect_timeout: float
    keepalive: dict[int, int] | None  # TCP keep-alive options (None: none)

    @classmethod
    def from_url(cls, url: str, options: RedisOptions) -> Target:
        """``url`` read by redis-py (``ConnectionPool.from_url``), as the thread side reads it.

        Raises:
            ConfigurationError: the URL is malformed.
        """
        unix = url.startswith("unix:")
        extra: dict[str, Any] = {} if unix else {"socket_keepalive": True}
        try:
            pool: Any = aioredis.ConnectionPool.from_url(
                url,
                socket_timeout=options.socket_timeout,
                socket_connect_timeout=options.socket_connect_timeout,
                **extra,
            )
            conn: Any = pool.make_connection()  # never connected: its settings are read
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"bad Redis URL {mask_url(url)!r}: {exc}") from None
        credentials = conn.credential_provider
        if credentials is None and (conn.username or conn.password):
            credentials = UsernamePasswordCredentialProvider(conn.username, conn.password)
        path = conn.path if unix else None
        ssl = conn.ssl_context.get() if isinstance(conn, aioredis.SSLConnection) else None
        return cls(
            where=path or f"{conn.host}:{conn.port}",
            host=None if unix else conn.host,
            port=None if unix else conn.port,
            path=path,
            ssl=ssl,
            db=int(conn.db or 0),
            credentials=credentials,
            client_name=conn.client_name,
            connect_timeout=float(conn.socket_connect_timeout or options.socket_timeout),
            keepalive=None if unix else dict(conn.socket_keepalive_options or {}),
        )

    async def handshake_commands(self) -> list[Command]:
        """What a new connection sends before any command: ``AUTH``, ``CLIENT SETNAME``,
        ``SELECT``, as redis-py sends them on RESP2."""
        commands: list[Command] = []
        if self.credentials is not None:
            commands.append(("AUTH", *await self.credentials.get_credentials_async()))
        if self.client_name:
            commands.append(("CLIENT", "SETNAME", self.client_name))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands


@dataclass(slots=True)
class _Batch:
    future: asyncio.Future[list[Any]]
    count: int  # replies it waits for
    until: float  # loop time by which its last reply is due
    replies: list[Any] = field(default_factory=list)


class Link(asyncio.Protocol):
    """One connection: batches of commands out, their replies back in order (see the
    module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, where: str) -> None:
        self.loop = loop
        self.where = where
        self.last_used = loop.time()
        self._transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader(replyError=BaseParser.parse_error, notEnoughData=_PENDING)
        self._batches: deque[_Batch] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._broken: BaseException | None = None
        self._writable: asyncio.Future[None] | None = None  # set while the transport is full

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (asyncio calls this once connected)."""
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        """Parse what arrived and complete the batches whose replies are all in."""
        reader, batches = self._reader, self._batches
        try:
            reader.feed(data)
            reply = reader.gets()
        except hiredis.ProtocolError as exc:
            self.break_off(redis.ConnectionError(f"Redis at {self.where}: bad reply: {exc}"))
            return
        while reply is not _PENDING:
            if not batches:
                self.break_off(redis.ConnectionError(f"Redis at {self.where}: reply unasked"))
                return
            batch = batches[0]
            batch.replies.append(reply)
            if len(batch.replies) == batch.count:
                batches.popleft()
                if not batch.future.done():  # its coroutine may have gone away
                    batch.future.set_result(batch.replies)
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.break_off(redis.ConnectionError(f"Redis at {self.where}: bad reply: {exc}"))
                return
        self.last_used = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail what still waits: the server closed the connection, or we did."""
        detail = f": {exc}" if exc is not None else ""
        self._fail(redis.ConnectionError(f"Redis at {self.where} closed the connection{detail}"))
        self._transport = None

    def pause_writing(self) -> None:
        """The transport's buffer is full: the next requests wait until it drains."""
        if self._writable is None:
            self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        """The transport's buffer drained."""
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # -- use ---------------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        """Connected and not broken."""
        return self._broken is None and self._transport is not None

    @property
    def idle(self) -> bool:
        """No batch waits for its replies."""
        return not self._batches

    async def request(self, packed: bytes, count: int, until: float) -> list[Any]:
        """Write ``packed`` (``count`` commands) and return their replies, error replies in
        their place, once all are in.

        Raises:
            redis.ConnectionError: the link broke (or was already broken).
            redis.TimeoutError: the replies did not all come by ``until`` (loop time).
        """
        if self._writable is not None:
            await asyncio.shield(self._writable)
        if self._broken is not None or self._transport is None:
            raise self._broken or redis.ConnectionError(f"Redis at {self.where}: not connected")
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        self._batches.append(_Batch(future, count, until))
        if self._timer is None or until < self._timer_at:
            self._arm(until)
        self._transport.write(packed)
        self.last_used = self.loop.time()
        replies = await future
        return replies

    def break_off(self, error: BaseException) -> None:
        """Fail every batch with ``error`` and close the connection."""
        self._fail(error)
        if self._transport is not None:
            self._transport.abort()  # nothing left to flush: what it owes is lost anyway

    def close(self) -> None:
        """Close the connection (what still waits fails)."""
        self.break_off(redis.ConnectionError(f"Redis at {self.where}: connection closed"))

    def _fail(self, error: BaseException) -> None:
        if self._broken is None:
            self._broken = error
        batches, self._batches = self._batches, deque()
        for batch in batches:
            if not batch.future.done():
                batch.future.set_exception(error)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.resume_writing()

    def keep_alive(self, options: dict[int, int]) -> None:
        """Turn TCP keep-alive on with ``options`` (``TCP_KEEPIDLE``...), as redis-py does;
        options this system does not know are skipped."""
        sock = self._transport.get_extra_info("socket") if self._transport is not None else None
        if sock is None:
            return
        with contextlib.suppress(OSError, TypeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in options.items():
                sock.setsockopt(socket.IPPROTO_TCP, option, value)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self.loop.call_at(when, self._check_time), when

    def _check_time(self) -> None:
        self._timer = None
        if not self._batches:
            return
        due = min(batch.until for batch in self._batches)
        if self.loop.time() >= due:
            self.break_off(redis.TimeoutError(f"Timeout reading from {self.where}"))
        else:
            self._arm(due)


async def open_link(target: Target, until: float) -> Link:
    """A new link to ``target``, its handshake done, by ``until`` (loop time) at the latest.

    Raises:
        redis.ConnectionError: the server cannot be reached.
        redis.TimeoutError: it did not answer in time.
        redis.AuthenticationError: it refused the credentials.
        redis.ResponseError: it refused a step of the handshake.
    """
    loop = asyncio.get_running_loop()
    link = Link(loop, target.where)
    timeout = min(target.connect_timeout, max(until - loop.time(), 0.0))
    try:
        async with asyncio.timeout(timeout):
            if target.path is not None:
                await loop.create_unix_connection(lambda: link, target.path, ssl=target.ssl)
            else:
                assert target.host is not None and target.port is not None
                await loop.create_connection(lambda: link, target.host, target.port, ssl=target.ssl)
    except TimeoutError:
        raise redis.TimeoutError(f"Timeout connecting to {target.where}") from None
    except OSError as exc:
        raise redis.ConnectionError(f"Error connecting to {target.where}: {exc}") from exc
    if target.keepalive is not None:
        link.keep_alive(target.keepalive)
    try:
        commands = await target.handshake_commands()
        if commands:
            replies = await link.request(pack(commands), len(commands), until)
            for reply in replies:
                if isinstance(reply, redis.RedisError):
                    raise reply
    except BaseException:
        link.close()
        raise
    return link


__all__ = ["Link", "Target", "open_link", "pack"]
