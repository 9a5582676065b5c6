"""Redis from asyncio code: each event loop's connections to a server, and running commands.

The Redis broker and backend reach their server from coroutines through :func:`links_for`,
which gives the running loop its own :class:`LoopLinks` for the :class:`RedisDatabase` (the
same URL and options as the thread side's client): a connection belongs to the loop that opened
it, so two loops (``asyncio.run()`` twice, or loops in two threads) never share one. A loop has

- one link for the commands that answer at once (publishes, reads, documents): the batches of
  every coroutine go down it one behind another and their replies come back in order
  (``async_link.Link``), so 2,000 coroutines publishing at once share one connection, and
  Redis reads their commands in a few large reads;
- links lent one to each coroutine that waits (``BLPOP`` holds its connection until a reply
  or its time), given back for the next wait, so a wait never holds up the commands.

A link idle for longer than ``health_check_interval`` is not trusted (the server may have
dropped it without a word): it is closed and a new one opened, where the thread side sends a
``PING`` first. A batch that fails on a broken link (the server restarted) is sent once more on
a new one, as on the thread side, if its time allows. A coroutine cancelled while its wait
blocks closes its lent link: its ``BLPOP`` would hold it.

A loop's links are closed when the loop shuts down: an asynchronous generator registered with
the loop on first use is closed by ``loop.shutdown_asyncgens()`` (``asyncio.run()``,
``asyncio.Runner`` and uvicorn call it before closing the loop), and closes them on the loop
that opened them. Only plain, TLS and Unix-socket URLs have links here; a Sentinel URL gets
None, and its callers use the thread side.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from celeriac._redis.async_link import Link, Target, open_link, pack
from celeriac._redis.connect import TRANSIENT, RedisOptions, redis
from celeriac._redis.scripts import Command
from celeriac.urls import REDIS_SCHEMES, SENTINEL_SCHEMES, scheme_of

if TYPE_CHECKING:
    from celeriac._redis.database import RedisDatabase


class LoopLinks:
    """One event loop's links to one server (see the module docstring)."""

    def __init__(self, target: Target, options: RedisOptions) -> None:
        self._target = target
        self._timeout = options.socket_timeout
        self._stale = options.health_check_interval
        self._shared: Link | None = None
        self._opening: asyncio.Future[Link] | None = None
        self._idle: list[Link] = []  # lent links given back, newest last
        self._lent: set[Link] = set()
        self.closed = False

    async def run(self, commands: Sequence[Command], until: float | None = None) -> list[Any]:
        """Send ``commands`` in one write on the loop's shared link and return every reply,
        an error reply in its place (it was read whole), as ``RedisDatabase.execute`` does
        without raising. They are sent once more on a new link if the link broke, time
        allowing; the whole call ends by ``until`` (loop time), or ``socket_timeout`` from
        now if that comes first.

        Raises:
            redis.RedisError: Redis failed (not an error reply), or did not answer in time.
        """
        packed = pack(commands)
        loop = asyncio.get_running_loop()
        limit = self._limit(loop, until)
        for attempt in (1, 2):
            try:
                link = await self._shared_link(loop, limit)
                return _checked(link, await link.request(packed, len(commands), limit))
            except TRANSIENT:
                if attempt == 2 or loop.time() >= limit:
                    raise
        raise AssertionError("unreachable")

    async def run_blocking(self, commands: Sequence[Command], until: float) -> list[Any]:
        """:meth:`run` on a link of its own, for commands that block on the server (a
        ``BLPOP``): the replies must come by ``until`` (loop time). A coroutine cancelled
        while they block closes the link.

        Raises:
            redis.RedisError: Redis failed (not an error reply), or did not answer in time.
        """
        packed = pack(commands)
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            link = await self._borrow(loop, min(until, loop.time() + self._timeout))
            try:
                replies = _checked(link, await link.request(packed, len(commands), until))
            except TRANSIENT:
                self._give_back(link)
                if attempt == 2 or loop.time() >= until:
                    raise
                continue
            except BaseException:
                link.close()  # cancelled: the server may still block on its behalf
                self._give_back(link)
                raise
            self._give_back(link)
            return replies
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every link (each lent one fails its wait)."""
        self.closed = True
        for link in [self._shared, *self._idle, *self._lent]:
            if link is not None:
                link.close()
        self._idle.clear()
        self._lent.clear()

    def _limit(self, loop: asyncio.AbstractEventLoop, until: float | None) -> float:
        limit = loop.time() + self._timeout
        return limit if until is None or until > limit else until

    def _fresh(self, link: Link, now: float) -> bool:
        return link.usable and (not link.idle or now - link.last_used < self._stale)

    async def _shared_link(self, loop: asyncio.AbstractEventLoop, until: float) -> Link:
        link = self._shared
        if link is not None and self._fresh(link, loop.time()):
            return link
        if self._opening is None:  # one connect, which every coroutine here waits for
            self._opening = loop.create_task(self._open_shared(until))
            self._opening.add_done_callback(_retrieved)  # its waiters may all have gone
        return await asyncio.shield(self._opening)

    async def _open_shared(self, until: float) -> Link:
        try:
            if self._shared is not None:
                self._shared.close()
            self._shared = await open_link(self._target, until)
            if self.closed:
                self._shared.close()
            return self._shared
        finally:
            self._opening = None

    async def _borrow(self, loop: asyncio.AbstractEventLoop, until: float) -> Link:
        now = loop.time()
        while self._idle:
            link = self._idle.pop()
            if self._fresh(link, now):
                self._lent.add(link)
                return link
            link.close()
        link = await open_link(self._target, until)
        if self.closed:
            link.close()
        self._lent.add(link)
        return link

    def _give_back(self, link: Link) -> None:
        self._lent.discard(link)
        if link.usable and link.idle and not self.closed:
            self._idle.append(link)
        else:
            link.close()


def _retrieved(task: asyncio.Future[Link]) -> None:
    if not task.cancelled():
        task.exception()


def _checked(link: Link, replies: list[Any]) -> list[Any]:
    """``replies``, unless one says the link is no good (``READONLY``: a fail-over; ``ERR max
    number of clients reached``): that breaks the link and is raised, as a dropped
    connection is, as the thread side raises it."""
    for reply in replies:
        if isinstance(reply, TRANSIENT):
            link.break_off(reply)
            raise reply
    return replies


async def _closing(links: LoopLinks) -> AsyncIterator[None]:
    """Suspended for the loop's life; closed by ``loop.shutdown_asyncgens()``, it closes the
    loop's links."""
    try:
        yield
    finally:
        links.close()


class ServerLinks:
    """The :class:`LoopLinks` of one server, one per event loop."""

    def __init__(self, url: str, options: RedisOptions) -> None:
        self._url = url
        self._options = options
        self._target: Target | None = None
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[LoopLinks, AsyncIterator[None]]
        ] = weakref.WeakKeyDictionary()

    async def of_running_loop(self) -> LoopLinks:
        """The running loop's links (made on first use).

        Raises:
            ConfigurationError: the URL is malformed.
            RuntimeError: no event loop is running.
        """
        loop = asyncio.get_running_loop()
        found = self._loops.get(loop)
        if found is not None and not found[0].closed:
            return found[0]
        with self._lock:
            if self._target is None:
                self._target = Target.from_url(self._url, self._options)
            links = LoopLinks(self._target, self._options)
            closer = _closing(links)
            self._loops[loop] = (links, closer)
        await anext(closer)  # registered with this loop's shutdown_asyncgens from here on
        return links


def raise_errors(replies: list[Any]) -> list[Any]:
    """The replies, after raising the first error reply among them.

    Raises:
        redis.ResponseError: one of the replies is an error.
    """
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise reply
    return replies


_servers: weakref.WeakKeyDictionary[RedisDatabase, ServerLinks | None] = weakref.WeakKeyDictionary()
_servers_lock = threading.Lock()


def links_for(db: RedisDatabase) -> ServerLinks | None:
    """The per-loop links to ``db``'s server; None for a URL that has none (a Sentinel's:
    its callers use the thread-side client)."""
    if db in _servers:  # no lock: the entry, once made, never changes
        return _servers[db]
    with _servers_lock:
        if db not in _servers:
            url = db.address
            scheme = scheme_of(url)
            supported = scheme in REDIS_SCHEMES and scheme not in SENTINEL_SCHEMES
            _servers[db] = ServerLinks(url, db.options) if supported else None
        return _servers[db]


__all__ = ["LoopLinks", "ServerLinks", "links_for", "raise_errors"]
