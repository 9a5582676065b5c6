"""One SQLite database file, shared by the SQLite broker and backend of every process on a host.

The file runs in WAL mode, so readers never block the one writer. Each thread of each process
gets its own connection (sqlite3 connections must not cross threads, nor a ``fork``). Every
write runs in ``BEGIN IMMEDIATE`` so that a read-then-write never fails on a stale snapshot;
writers queue on the file lock through SQLite's busy handler.

SQLite cannot notify another process of a commit. Waiting is therefore done by watching
``PRAGMA data_version``, which changes whenever another connection commits: a check costs a few
microseconds and reads no table, so waiters look every half millisecond while it matters and
back off as the wait grows long.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from importlib import resources

_BUSY_TIMEOUT_MS = 30_000
# Poll steps for waiting on a change: (waited so far, interval), in seconds.
_POLL_STEPS = ((0.05, 0.0005), (1.0, 0.002), (float("inf"), 0.01))


def read_schema(package: str, name: str) -> str:
    """The text of a ``.sql`` file shipped inside ``package``."""
    return resources.files(package).joinpath(name).read_text()


class SqliteDatabase:
    """Connections to one database file, one per thread and process, with the schemas applied."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._schemas: list[str] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def add_schema(self, script: str) -> None:
        """Apply ``script`` (idempotent ``CREATE ... IF NOT EXISTS``) now and on new connections."""
        with self._lock:
            if script in self._schemas:
                return
            self._schemas.append(script)
        self.connection().executescript(script)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use and after a ``fork``.

        Raises:
            sqlite3.Error: the file cannot be opened.
        """
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1e3
        )
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        for script in list(self._schemas):
            conn.executescript(script)
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the write lock from its first statement."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def data_version(self) -> int:
        """A number that changes whenever another connection commits to the file."""
        row = self.connection().execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def wait_for_change(self, version: int, until: float, wake_at: float | None = None) -> bool:
        """Sleep until another connection commits, ``wake_at`` (epoch) passes, or ``until``.

        ``until`` is a ``time.monotonic()`` deadline. Returns False only when ``until`` passed.
        """
        started = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= until:
                return False
            if self.data_version() != version:
                return True
            if wake_at is not None and time.time() >= wake_at:
                return True
            waited = now - started
            step = next(interval for limit, interval in _POLL_STEPS if waited < limit)
            time.sleep(min(step, until - now))

    def close(self) -> None:
        """Close this thread's connection; others close when their threads end."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None


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
