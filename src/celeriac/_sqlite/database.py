"""One SQLite database file, shared by the SQLite broker and backend of every process on a host.

The file runs in WAL mode, so readers never block the one writer. Each thread of each process
gets its own connection (sqlite3 connections must not cross threads, nor a ``fork``). Every
write runs in ``BEGIN IMMEDIATE`` so that a read-then-write never fails on a stale snapshot.
Waiting for the file lock is done here, in steps from a tenth of a millisecond, rather than by
SQLite's busy handler, which sleeps in whole milliseconds; the threads of one process queue on a
lock of their own first.

How long a statement waits for the lock: ``BUSY_TIMEOUT`` (30 s), or less inside
:meth:`SqliteDatabase.deadline`, which a publish opens with its ``broker_publish_timeout``.
Everything else (a worker's batch above all) may wait the full 30 s: it has no caller waiting
on it, and a batch that gave up early would only be retried after a backoff, losing its place
to the writers that kept trying (SQLite's lock is not a queue).

SQLite cannot notify another process of a commit. Waiting is therefore done by watching
``PRAGMA data_version``, which changes whenever another connection commits: a check costs a few
microseconds and reads no table, so waiters look every half millisecond while it matters and
back off as the wait grows long.

Checkpoints (copying the WAL back into the database file, with an fsync of each) are left to
SQLite, which runs one inside the commit that takes the WAL past ``CHECKPOINT_PAGES``: 4,000
pages (16 MiB) rather than its default 1,000, so that a worker's main process, which commits a
turn every few milliseconds, stops for a checkpoint's fsyncs a quarter as often, and copies a
page that many turns wrote once. The WAL file is cut back to that size when it starts over.
Durability is the same: a checkpoint moves committed data only.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from typing import Any, TypeVar

T = TypeVar("T")
BUSY_TIMEOUT = 30.0  # seconds a statement may wait for another process's lock
CHECKPOINT_PAGES = 4000  # WAL pages (of 4 KiB) past which a commit checkpoints
# Poll steps for waiting on a change: (waited so far, interval), in seconds.
_POLL_STEPS = ((0.05, 0.0005), (1.0, 0.002), (30.0, 0.01), (float("inf"), 0.025))


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (to keep it alive across ``fork``)."""


# A forked child must never close a connection it inherited: SQLite would release or check
# locks and files that belong to the parent. Every live connection is pinned during a fork, and
# the child keeps its copies pinned for good (each is a few kilobytes).
_live: weakref.WeakSet[_Connection] = weakref.WeakSet()
_pinned: list[_Connection] = []


def _pin() -> None:
    _pinned.extend(_live)


def _unpin_in_parent() -> None:
    _pinned.clear()


def _forget_in_child() -> None:
    _live.clear()


os.register_at_fork(before=_pin, after_in_parent=_unpin_in_parent, after_in_child=_forget_in_child)


def read_schema(package: str, name: str) -> str:
    """The text of a ``.sql`` file shipped inside ``package``."""
    return resources.files(package).joinpath(name).read_text()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def retry_busy(operation: Callable[[], T], until: float | None = None) -> T:
    """Run ``operation``, again and again while another process holds the lock it needs,
    until ``until`` (a ``time.monotonic()`` time; default: ``BUSY_TIMEOUT`` from now).

    Raises:
        sqlite3.OperationalError: still locked at ``until``, or another error.
    """
    delay = 0.0001
    deadline = time.monotonic() + BUSY_TIMEOUT if until is None else until
    while True:
        try:
            return operation()
        except sqlite3.OperationalError as exc:
            now = time.monotonic()
            if not _is_busy(exc) or now >= deadline:
                raise
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, 0.005)


class _Deadline:
    """One ``with`` block of :meth:`SqliteDatabase.deadline`."""

    __slots__ = ("local", "saved", "until")

    def __init__(self, local: threading.local, until: float) -> None:
        self.local, self.until, self.saved = local, until, None

    def __enter__(self) -> None:
        self.saved = getattr(self.local, "until", None)
        if self.saved is None or self.until < self.saved:
            self.local.until = self.until

    def __exit__(self, *exc: object) -> None:
        self.local.until = self.saved


class SqliteDatabase:
    """Connections to one database file, one per thread and process, with the schemas applied."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._schemas: list[str] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()

    def deadline(self, until: float) -> _Deadline:
        """A context in which this thread waits for the file's lock (and for another thread's
        transaction) no longer than ``until`` (a ``time.monotonic()`` time), or an earlier
        deadline already open, instead of ``BUSY_TIMEOUT``."""
        return _Deadline(self._local, until)

    def _busy_until(self) -> float:
        limit = time.monotonic() + BUSY_TIMEOUT
        until: float | None = getattr(self._local, "until", None)
        return limit if until is None or until > limit else until

    def add_schema(self, script: str) -> None:
        """Apply ``script`` (idempotent ``CREATE ... IF NOT EXISTS`` statements).

        It runs inside a transaction (joining one already open in this thread), because
        ``executescript`` would commit a transaction the caller has open. It is marked applied
        only once it has run, so another thread never goes on before the tables exist; two
        threads may both apply it, which changes nothing.
        """
        if script in self._schemas:
            return
        nested = bool(getattr(self._local, "depth", 0))
        with self.transaction() as conn:
            for statement in _statements(script):
                conn.execute(statement)
        if nested:
            return  # the outer transaction may still roll back: apply it again next time
        with self._lock:
            if script not in self._schemas:
                self._schemas.append(script)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use and after a ``fork``.

        Raises:
            sqlite3.Error: the file cannot be opened.
        """
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, factory=_Connection
        )
        conn.execute("PRAGMA busy_timeout = 0")  # see retry_busy
        retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"), self._busy_until())
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit = {CHECKPOINT_PAGES * 4096}")
        # A savepoint's or an upsert's statement journal in memory, not in a temporary file
        # made and deleted for each (a third of storing a batch of results went there).
        conn.execute("PRAGMA temp_store = MEMORY")
        _live.add(conn)
        self._local.conn, self._local.pid, self._local.depth = conn, os.getpid(), 0
        return conn

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of a query, outside of any write transaction.

        Raises:
            sqlite3.Error: the query failed.
        """
        conn = self.connection()
        return retry_busy(lambda: conn.execute(sql, params).fetchall(), self._busy_until())

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the write lock from its first statement.

        Nested calls in one thread join the outer transaction, so that a broker and a backend
        sharing this file can settle a message and store its result in one atomic step.

        Raises:
            sqlite3.OperationalError: the file stayed locked by another process (or this
                process's lock by another thread) for 30 s, or past this thread's deadline.
        """
        conn = self.connection()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        until = self._busy_until()
        if not self._write_lock.acquire(timeout=max(0.0, until - time.monotonic())):
            raise sqlite3.OperationalError("database is locked (by another thread)")
        try:
            retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"), until)
            self._local.depth = 1
            try:
                yield conn
                retry_busy(lambda: conn.execute("COMMIT"), self._busy_until())
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT leaves it open, too
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._local.depth = 0
        finally:
            self._write_lock.release()

    def data_version(self) -> int:
        """A number that changes whenever another connection commits to the file."""
        return int(self.read("PRAGMA data_version")[0][0])

    def wait_for_change(
        self,
        version: int,
        until: float,
        wake_at: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> bool:
        """Sleep until another connection commits, ``clock()`` reaches ``wake_at``, or ``until``.

        ``until`` is a ``time.monotonic()`` deadline. Returns False only when ``until`` passed.
        The polling interval grows with the time since this thread last saw a commit, across
        calls, so a worker that waits in a loop of short fetches idles cheaply.
        """
        quiet_since = getattr(self._local, "quiet_since", None) or time.monotonic()
        while True:
            now = time.monotonic()
            if self.data_version() != version:
                self._local.quiet_since = None
                return True
            if wake_at is not None and clock() >= wake_at:
                self._local.quiet_since = None
                return True
            if now >= until:
                self._local.quiet_since = quiet_since
                return False
            waited = now - quiet_since
            step = next(interval for limit, interval in _POLL_STEPS if waited < limit)
            time.sleep(min(step, until - now))

    def close(self) -> None:
        """Close this thread's connection; others close when their threads end."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None


def _statements(script: str) -> Iterator[str]:
    """The complete SQL statements of a script, in order."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        yield pending.strip()  # the last statement may lack its semicolon


_open: dict[str, SqliteDatabase] = {}
_open_lock = threading.Lock()


def open_database(path: str) -> SqliteDatabase:
    """The process-wide :class:`SqliteDatabase` for ``path`` (one per absolute path)."""
    key = os.path.abspath(path)
    with _open_lock:
        if key not in _open:
            _open[key] = SqliteDatabase(key)
        return _open[key]


def parse_sqlite_url(url: str) -> str:
    """The file path in ``sqlite:///relative.db`` or ``sqlite:////absolute.db``.

    Raises:
        ValueError: the URL names no file, or an in-memory database (which one process owns).
    """
    prefix = "sqlite://"
    if not url.startswith(prefix):
        raise ValueError(f"not a sqlite URL: {url!r}")
    rest = url[len(prefix) :]
    if not rest.startswith("/") or len(rest) < 2:
        raise ValueError(
            f"{url!r} names no file: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = rest[1:].split("?", 1)[0]
    if path in ("", ":memory:"):
        raise ValueError(
            "an in-memory SQLite database cannot be shared by workers: name a file, or use memory://"
        )
    return path
