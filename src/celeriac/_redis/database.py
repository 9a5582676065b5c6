"""One Redis server as a process sees it, shared by the Redis broker and result backend.

As ``_sqlite/database.py`` does for a SQLite file, :func:`open_database` gives one object per
server (URL and options) in a process: its client (a thread-safe connection pool), its Lua
scripts (loaded by ``scripts.py``) and the batch that each thread has open.

Batches. A worker's turn stores results, settles messages and leases new ones inside
``Broker.batch()``. On Redis, the calls that only write (the backend's ``store_many``, the
broker's ``ack_many``, ``requeue`` and ``dead_letter``) are queued while this thread has a batch
open, and run with the batch's next script call (the refill ``fetch``), or at its end, as one
Lua script composed of theirs (:func:`compose`): a turn costs one round trip and one script
run, it is atomic, and the parts run in the order they were called, so if storing a result
fails, its message is not settled. Their return values inside a batch are therefore
provisional; what Redis refuses when they run is passed to the caller's ``on_reply``. Any other
call first sends what is queued (:meth:`RedisDatabase.direct`), so a thread always reads its own
writes. An exception inside the batch drops what was queued, as a rollback would.

Scripts are called by SHA1 (``EVALSHA``, computed once per script and per composed batch):
sending a worker turn's 10-20 KB of source and hashing it on every call cost Redis more than
the data commands. A server that lost its script cache (a restart, ``SCRIPT FLUSH``) answers
``NOSCRIPT`` and runs nothing; :meth:`RedisDatabase.execute` then sends that command again with
its source (``EVAL``, which also caches it). That is one command run after the ones sent
behind it, so a script goes by SHA only as the last command of a write, or alone; inside a
``MULTI`` (where ``NOSCRIPT`` would fail one command and let the others run) and before a
``BLPOP`` (which would block first) it goes with its source. Commands go over a connection of
the calling thread's own, packed by hiredis and written in one ``sendall``: the hot path of a
worker's turn spends its time in Redis, not in the client library.

Deadlines. Every round trip on a thread's own connection ends within ``socket_timeout``, its
one reconnection included (a frozen Redis accepts connections and never answers, so a timeout
per socket read would let one call wait several times over). A caller with a total deadline
(a publish, a ``get()``) opens :meth:`RedisDatabase.deadline`: the calls it makes in this thread,
reading the clock included, give up when it passes.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from celeriac._redis.connect import TRANSIENT, RedisClock, RedisOptions, connect, redis
from celeriac._redis.scripts import Arg, Command, LuaScript, compose, sha1
from celeriac.exceptions import CeleriacError
from celeriac.urls import mask_url

_pack_hiredis: Callable[[Any], bytes] | None
try:
    from hiredis import pack_command as _pack_hiredis
except ImportError:  # pragma: no cover - hiredis comes with celeriac[redis]
    _pack_hiredis = None


@dataclass
class _Queued:
    script: LuaScript
    keys: Sequence[str]
    args: Sequence[Arg]
    on_reply: Callable[[Any], None]


@dataclass
class _Batch:
    queued: list[_Queued] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


class _ThreadState(threading.local):
    """What each thread has of its own: its connection, its open batch, its deadline. The
    class attributes are every thread's start (reading one is not a failed lookup, which a
    ``getattr`` with a default would pay on every call)."""

    conn: Any = None
    pid: int | None = None
    batch: _Batch | None = None
    until: float | None = None


class _Errors:
    """Turns redis-py's errors into one of ours, naming what failed and where."""

    __slots__ = ("error", "url", "what")

    def __init__(self, url: str, what: str, error: type[CeleriacError]) -> None:
        self.url, self.what, self.error = url, what, error

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if isinstance(exc, redis.RedisError):
            raise self.error(
                f"Redis at {self.url}: {self.what} failed: {type(exc).__name__}: {exc}"
            ) from exc


class _BatchScope:
    """One ``with`` block of :meth:`RedisDatabase.batch`."""

    __slots__ = ("db", "errors", "outer")

    def __init__(self, db: RedisDatabase, errors: _Errors) -> None:
        self.db, self.errors, self.outer = db, errors, False

    def __enter__(self) -> None:
        local = self.db._local
        self.outer = getattr(local, "batch", None) is None
        if self.outer:
            local.batch = _Batch()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if not self.outer:
            return
        try:
            if exc is None:
                with self.errors:
                    self.db.flush()
        finally:
            self.db._local.batch = None


class _Deadline:
    """One ``with`` block of :meth:`RedisDatabase.deadline`."""

    __slots__ = ("local", "saved", "until")

    def __init__(self, local: threading.local, until: float) -> None:
        self.local, self.until, self.saved = local, until, None

    def __enter__(self) -> None:
        self.saved = getattr(self.local, "until", None)
        if self.saved is None or self.until < self.saved:
            self.local.until = self.until

    def __exit__(self, *exc: object) -> None:
        self.local.until = self.saved


class RedisDatabase:
    """A Redis server: the client, the scripts, this thread's batch; see the module docstring."""

    def __init__(self, url: str, options: RedisOptions) -> None:
        self.url = mask_url(url)
        self.options = options
        self.client = connect(url, options)
        self.address = url  # unmasked (never shown): the asyncio clients' (async_connect.py)
        self.clock = RedisClock(self._redis_time)
        self._local = _ThreadState()
        self._scripts: dict[tuple[str, str], LuaScript] = {}
        self._lock = threading.Lock()
        self._own: weakref.WeakSet[Any] = weakref.WeakSet()  # the threads' own connections
        self._composed: dict[tuple[str, ...], str] = {}  # names of the parts -> SHA1
        self._sources: dict[str, str] = {}  # SHA1 -> source, for a NOSCRIPT

    def script(self, package: str, name: str) -> LuaScript:
        """The script ``redis_lua/<name>.lua`` of ``package`` (read once)."""
        with self._lock:
            if (package, name) not in self._scripts:
                script = self._scripts[package, name] = LuaScript(package, name)
                self._sources[script.sha] = script.source
            return self._scripts[package, name]

    def disconnect(self) -> None:
        """Close every connection (the pool's and the threads' own); the next call reconnects."""
        self.client.connection_pool.disconnect()
        with self._lock:
            own = list(self._own)
        for conn in own:
            conn.disconnect()

    # -- deadlines ---------------------------------------------------------------------------
    def deadline(self, until: float) -> _Deadline:
        """A context in which this thread's calls to Redis give up at ``until`` (a
        ``time.monotonic()`` time), or at an earlier deadline already open, raising
        ``redis.TimeoutError``. Outside one, each round trip gives up after ``socket_timeout``.
        """
        return _Deadline(self._local, until)

    def _until(self) -> float:
        """When the round trip starting now must end."""
        limit = time.monotonic() + self.options.socket_timeout
        until = self._local.until
        return limit if until is None or until > limit else until

    def _redis_time(self) -> float:
        """Redis's ``TIME`` in epoch seconds, for :class:`RedisClock` (within the deadline).

        Raises:
            redis.RedisError: Redis failed or did not answer in time.
        """
        seconds, microseconds = self.execute([("TIME",)])[0]
        return int(seconds) + int(microseconds) / 1e6

    # -- the fast path: this thread's own connection ---------------------------------------
    def _connection(self, until: float) -> Any:
        conn = self._local.conn
        if conn is None or self._local.pid != _pid:
            conn = self.client.connection_pool.make_connection()
            self._local.conn, self._local.pid = conn, _pid
            with self._lock:
                self._own.add(conn)
        # Connected here, never by send_packed_command: when it reconnects by itself, it skips
        # the Sentinel lookup of a Sentinel-managed connection (and goes to localhost:6379).
        if getattr(conn, "_sock", None) is None:
            _connect(conn, until)
        return conn

    def execute(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one write on this thread's own connection; read every reply.

        A connection found dead (the server restarted) is replaced and the commands are sent
        once more, as redis-py itself does, if time is left: the whole call, connecting
        included, ends within ``socket_timeout`` or this thread's deadline, if sooner. An
        ``EVALSHA`` that Redis answers with ``NOSCRIPT`` is sent again with the script's source
        (see the module docstring).

        Raises:
            redis.RedisError: Redis failed, or answered one of the commands with an error.
            redis.TimeoutError: Redis did not answer in time.
        """
        until = self._until()
        replies = self._send(commands, until)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                break
        else:
            return replies
        missing = [
            i
            for i, reply in enumerate(replies)
            if isinstance(reply, redis.exceptions.NoScriptError)
        ]
        if missing:
            again = self._send([self._with_source(commands[i]) for i in missing], until)
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise reply
        return replies

    def _with_source(self, command: Command) -> Command:
        """``command`` (an ``EVALSHA``) as the ``EVAL`` of its script's source."""
        source = self._sources.get(str(command[1]))
        return command if source is None else ("EVAL", source, *command[2:])

    def _send(self, commands: Sequence[Command], until: float) -> list[Any]:
        """:meth:`execute` without the second chance of a ``NOSCRIPT``: an error reply is
        returned in its place, the replies after it read all the same.

        Raises:
            redis.RedisError: Redis failed (not an error reply).
            redis.TimeoutError: Redis did not answer in time.
        """
        packed = None
        for attempt in (1, 2):
            conn = None
            try:
                conn = self._connection(until)
                if packed is None:
                    packed = _pack(conn, commands)
                _bound(conn, until)
                conn.send_packed_command([packed], check_health=False)
                return [_read(conn, until) for _ in commands]
            except TRANSIENT:
                if conn is not None:
                    conn.disconnect()
                if attempt == 2 or time.monotonic() >= until:
                    raise
            except BaseException:
                if conn is not None:
                    conn.disconnect()  # replies may be left unread: never reuse it half-read
                raise
        raise AssertionError("unreachable")

    def direct_execute(self, commands: Sequence[Command]) -> list[Any]:
        """:meth:`execute`, after sending what this thread's batch queued.

        Raises:
            redis.RedisError: Redis failed, or answered one of the commands with an error.
        """
        self.flush()
        return self.execute(commands)

    def call(self, script: LuaScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run one script now, on its own (nothing queued is sent with it).

        Raises:
            redis.RedisError: Redis failed or the script raised an error.
        """
        return self.execute([script.command(keys, args)])[0]

    def errors(self, what: str, error: type[CeleriacError]) -> _Errors:
        """A context that turns redis-py's errors into ``error``, naming what failed and
        where (a class, not a generator: it wraps every call of the hot path)."""
        return _Errors(self.url, what, error)

    def batch(self, what: str, error: type[CeleriacError]) -> _BatchScope:
        """A context that queues this thread's writes until the next script call or its end
        (a nested one joins the outer one); failures are raised as ``error``."""
        return _BatchScope(self, _Errors(self.url, what, error))

    def batch_state(self) -> dict[str, Any] | None:
        """A scratch dict that lives as long as this thread's open batch (None: no batch)."""
        batch = self._local.batch
        return None if batch is None else batch.state

    def defer(
        self,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[Arg],
        on_reply: Callable[[Any], None],
    ) -> bool:
        """Queue a call in this thread's batch (True), or do nothing when none is open."""
        batch = self._local.batch
        if batch is None:
            return False
        batch.queued.append(_Queued(script, keys, args, on_reply))
        return True

    def _take(self) -> list[_Queued]:
        batch = self._local.batch
        if batch is None or not batch.queued:
            return []
        queued, batch.queued = batch.queued, []
        return queued

    def run(self, script: LuaScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run ``script`` now, after what this thread's batch queued, in one transaction.

        Raises:
            redis.RedisError: Redis failed or refused the call (what was queued is dropped).
        """
        queued = self._take()
        if not queued:
            return self.call(script, keys, args)
        last = _Queued(script, keys, args, lambda reply: None)
        return self._run_composed([*queued, last])[-1]

    def flush(self) -> None:
        """Send what this thread's batch queued.

        Raises:
            redis.RedisError: Redis failed or refused it (it is dropped).
        """
        queued = self._take()
        if len(queued) == 1:
            call = queued[0]
            call.on_reply(self.call(call.script, call.keys, call.args))
        elif queued:
            self._run_composed(queued)

    def direct(self) -> redis.Redis:
        """The client, for a command that is not a script, after sending what was queued.

        Raises:
            redis.RedisError: sending what was queued failed.
        """
        self.flush()
        return self.client

    def _run_composed(self, calls: list[_Queued]) -> list[Any]:
        """Run the calls as one composed script; hand each its reply."""
        names = tuple(call.script.name for call in calls)
        sha = self._composed.get(names)
        if sha is None:
            source = compose([call.script for call in calls])
            sha = sha1(source)
            with self._lock:
                self._sources[sha] = source
                self._composed[names] = sha
        keys = [key for call in calls for key in call.keys]
        header: list[Arg] = [len(calls)]
        for call in calls:
            header += [len(call.keys), len(call.args)]
        args = [arg for call in calls for arg in call.args]
        replies: list[Any] = self.execute([("EVALSHA", sha, len(keys), *keys, *header, *args)])[0]
        for call, reply in zip(calls, replies, strict=True):
            call.on_reply(reply)
        return replies


_SLACK = 0.05  # seconds a socket's timeout may differ from the time left (see _bound)


def _time_left(until: float) -> float:
    left = until - time.monotonic()
    if left <= 0:
        raise redis.TimeoutError("Redis did not answer before the call's deadline")
    return left


def _connect(conn: Any, until: float) -> None:
    """Connect ``conn`` (the socket, then redis-py's handshake) by ``until``.

    Raises:
        redis.RedisError: the connection failed or did not complete in time.
    """
    left = _time_left(until)
    saved = conn.socket_timeout, conn.socket_connect_timeout
    conn.socket_timeout = min(saved[0] or left, left)
    conn.socket_connect_timeout = min(saved[1] or left, left)
    try:
        conn.connect()
    finally:
        conn.socket_timeout, conn.socket_connect_timeout = saved


def _bound(conn: Any, until: float) -> None:
    """The next write or read on ``conn`` waits no longer than ``until`` (give or take
    ``_SLACK``).

    redis-py sets a socket's timeout once, at connect; a thread's own connection is used only
    by :meth:`RedisDatabase.execute`, which sets it before each step instead. Setting it costs
    two system calls, so it is left alone when it is close enough, as it is on every call that
    has no deadline of its own (then it is ``socket_timeout``).

    Raises:
        redis.TimeoutError: ``until`` has passed.
    """
    sock = conn._sock
    if sock is not None:
        left = until - time.monotonic()
        if left <= 0:
            raise redis.TimeoutError("Redis did not answer before the call's deadline")
        current = sock.gettimeout()
        if current is None or not left - _SLACK <= current <= left + _SLACK:
            sock.settimeout(left)


def _read(conn: Any, until: float) -> Any:
    """The next reply on ``conn``; an error reply returned, not raised (it was read whole).

    Raises:
        redis.RedisError: the read failed, or Redis answered ``READONLY`` (a failover: the
            caller reconnects, as for a dropped connection).
    """
    _bound(conn, until)
    try:
        return conn.read_response()
    except redis.ResponseError as error:
        if isinstance(error, TRANSIENT):
            raise
        return error


def _pack(conn: Any, commands: Sequence[Command]) -> bytes:
    """The commands in Redis's wire format, in one buffer (by hiredis when it is there)."""
    if _pack_hiredis is not None:
        if len(commands) == 1:
            return _pack_hiredis(commands[0])
        return b"".join(_pack_hiredis(command) for command in commands)
    return b"".join(b"".join(conn.pack_command(*command)) for command in commands)


def _forked() -> None:
    global _pid
    _pid = os.getpid()


_pid = os.getpid()  # this process's, without a system call on every round trip
os.register_at_fork(after_in_child=_forked)
_databases: dict[tuple[Any, ...], RedisDatabase] = {}
_databases_lock = threading.Lock()


def open_database(url: str, options: RedisOptions) -> RedisDatabase:
    """The process's one :class:`RedisDatabase` for ``url`` and ``options``.

    Raises:
        ConfigurationError: the URL is malformed or names no Redis.
    """
    key = (url, options.key())
    with _databases_lock:
        if key not in _databases:
            _databases[key] = RedisDatabase(url, options)
        return _databases[key]
