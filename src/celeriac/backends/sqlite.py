"""Results in the same SQLite file as the embedded broker (or any other file).

The schema is in ``sqlite.sql`` beside this file. ``wait`` watches the file's data version
instead of re-reading the row, so a waiting ``get()`` costs almost nothing until a commit lands.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

from celeriac import states
from celeriac.backends.base import Clock, ResultBackend, ResultRecord
from celeriac.exceptions import BackendError
from celeriac.sqlite_db import SqliteDatabase, open_database, read_schema

_FINAL = tuple(sorted(states.READY_STATES))
_UPSERT = (
    "INSERT INTO celeriac_results"
    " (task_id, state, content_type, payload, date_done, retries, meta, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (task_id) DO UPDATE SET state = excluded.state,"
    " content_type = excluded.content_type, payload = excluded.payload,"
    " date_done = excluded.date_done, retries = excluded.retries, meta = excluded.meta,"
    " expires_at = excluded.expires_at"
    " WHERE celeriac_results.state NOT IN (?, ?, ?) OR celeriac_results.expires_at <= ?"
    " RETURNING task_id"
)
_COLUMNS = "task_id, state, content_type, payload, date_done, retries, meta"


@contextlib.contextmanager
def _errors(what: str, path: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise BackendError(f"SQLite backend at {path}: {what} failed: {exc}") from exc


def _record(row: tuple[Any, ...]) -> ResultRecord:
    task_id, state, content_type, payload, date_done, retries, meta = row
    return ResultRecord(
        task_id=str(task_id),
        state=str(state),
        content_type=str(content_type),
        payload=bytes(payload),
        date_done=None if date_done is None else float(date_done),
        retries=int(retries),
        meta=json.loads(str(meta)),
    )


class SqliteBackend(ResultBackend):
    """A result backend in a SQLite file; see the module docstring."""

    def __init__(self, path: str, *, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        self.url = f"sqlite:///{path}"
        self.path = path
        self._db: SqliteDatabase | None = None

    @property
    def db(self) -> SqliteDatabase:
        """The database, opened (and its schema created) on first use.

        Raises:
            BackendError: the file cannot be opened or created.
        """
        if self._db is None:
            with _errors("opening the database", self.path):
                db = open_database(self.path)
                db.add_schema(read_schema("celeriac.backends", "sqlite.sql"))
            self._db = db
        return self._db

    def store_many(self, records: Sequence[ResultRecord], *, expires: float | None) -> list[bool]:
        """Store records in one transaction; see :meth:`ResultBackend.store_many`."""
        if not records:
            return []
        now = self.clock()
        expires_at = None if expires is None else now + expires
        flags: list[bool] = []
        with _errors("store", self.path), self.db.transaction() as conn:
            for r in records:
                row = conn.execute(
                    _UPSERT,
                    [
                        r.task_id,
                        r.state,
                        r.content_type,
                        r.payload,
                        r.date_done,
                        r.retries,
                        json.dumps(r.meta),
                        expires_at,
                        *_FINAL,
                        now,
                    ],
                ).fetchone()
                flags.append(row is not None)
        return flags

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """Fetch records; see :meth:`ResultBackend.get_many`."""
        found: dict[str, ResultRecord] = {}
        ids = list(dict.fromkeys(task_ids))
        with _errors("get", self.path):
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self.db.read(
                    f"SELECT {_COLUMNS} FROM celeriac_results WHERE task_id IN ({marks})"
                    " AND (expires_at IS NULL OR expires_at > ?)",
                    [*chunk, self.clock()],
                )
                found.update((str(row[0]), _record(row)) for row in rows)
        return found

    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        """Wait for a final state, woken by commits; see :meth:`ResultBackend.wait`."""
        until = float("inf") if timeout is None else time.monotonic() + timeout
        with _errors("wait", self.path):
            while True:
                version = self.db.data_version()
                record = self.get(task_id)
                if record is not None and record.ready:
                    return record
                if not self.db.wait_for_change(version, until):
                    return record

    def forget(self, task_ids: Sequence[str]) -> None:
        """Delete records; see :meth:`ResultBackend.forget`."""
        with _errors("forget", self.path), self.db.transaction() as conn:
            conn.executemany(
                "DELETE FROM celeriac_results WHERE task_id = ?", [[t] for t in task_ids]
            )

    def cleanup(self) -> int:
        """Delete expired records; see :meth:`ResultBackend.cleanup`."""
        with _errors("cleanup", self.path), self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM celeriac_results WHERE expires_at <= ?", [self.clock()]
            )
            return cursor.rowcount

    def close(self) -> None:
        """Close this thread's connection."""
        if self._db is not None:
            self._db.close()
