"""Results in the same SQLite file as the embedded broker (or any other file).

The schema is in ``sqlite.sql`` beside this file. ``wait`` watches the file's data version
instead of re-reading the row, so a waiting ``get()`` costs almost nothing until a commit lands.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import orjson

from celeriac import states
from celeriac._sqlite.store import StoreFile
from celeriac.backends.base import Clock, ResultBackend, ResultRecord
from celeriac.backends.sqlite_history import SqliteHistory, history_path
from celeriac.exceptions import BackendError

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
)
_UPSERT_RETURNING = _UPSERT + " RETURNING task_id"
_COLUMNS = "task_id, state, content_type, payload, date_done, retries, meta"


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


def _meta_text(meta: dict[str, Any]) -> str:
    """A record's meta as JSON text: by orjson (a tenth of ``json.dumps``'s cost, once a task
    in a worker's turn), or by ``json`` for what orjson refuses (an int past 64 bits)."""
    try:
        return orjson.dumps(meta).decode()
    except TypeError:
        return json.dumps(meta)


class SqliteBackend(ResultBackend):
    """A result backend in a SQLite file; see the module docstring."""

    def __init__(self, path: str, *, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        self.url = f"sqlite:///{path}"
        self.path = path
        self._file = StoreFile(
            path, name="SQLite backend", schema_package="celeriac.backends", error=BackendError
        )
        # The history in a file of its own: its writes (the events process's, a batch every
        # turn of a busy worker) never hold the lock or fill the WAL of the results.
        self._history_file = StoreFile(
            history_path(path),
            name="SQLite history",
            schema_package="celeriac.backends",
            schema="sqlite_history.sql",
            error=BackendError,
        )
        self.history = SqliteHistory(self._history_file, lambda: self.clock())

    def store_many(self, records: Sequence[ResultRecord], *, expires: float | None) -> list[bool]:
        """Store records in one transaction; see :meth:`ResultBackend.store_many`."""
        if not records:
            return []
        now = self.clock()
        expires_at = None if expires is None else now + expires
        rows = [
            (
                r.task_id,
                r.state,
                r.content_type,
                r.payload,
                r.date_done,
                r.retries,
                _meta_text(r.meta),
                expires_at,
                *_FINAL,
                now,
            )
            for r in records
        ]
        with self._file.errors("store"), self._file.db.transaction() as conn:
            # One executemany for the batch: when it changed as many rows as it has records,
            # every record was stored (an upsert changes one row or none). Otherwise (a final
            # record already there: a lost lease; or one id twice) it is undone and done again
            # a record at a time, to say which were stored.
            conn.execute("SAVEPOINT store_many")
            changed = conn.total_changes
            conn.executemany(_UPSERT, rows)
            if conn.total_changes - changed == len(rows):
                conn.execute("RELEASE store_many")
                return [True] * len(rows)
            conn.execute("ROLLBACK TO store_many")
            conn.execute("RELEASE store_many")
            return [conn.execute(_UPSERT_RETURNING, row).fetchone() is not None for row in rows]

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """Fetch records; see :meth:`ResultBackend.get_many`."""
        found: dict[str, ResultRecord] = {}
        ids = list(dict.fromkeys(task_ids))
        with self._file.errors("get"):
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._file.db.read(
                    f"SELECT {_COLUMNS} FROM celeriac_results WHERE task_id IN ({marks})"
                    " AND (expires_at IS NULL OR expires_at > ?)",
                    [*chunk, self.clock()],
                )
                found.update((str(row[0]), _record(row)) for row in rows)
        return found

    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        """Wait for a final state, woken by commits; see :meth:`ResultBackend.wait`."""
        until = float("inf") if timeout is None else time.monotonic() + timeout
        with self._file.errors("wait"):
            while True:
                version = self._file.db.data_version()
                record = self.get(task_id)
                if record is not None and record.ready:
                    return record
                if not self._file.db.wait_for_change(version, until):
                    return record

    def forget(self, task_ids: Sequence[str]) -> None:
        """Delete records; see :meth:`ResultBackend.forget`."""
        with self._file.errors("forget"), self._file.db.transaction() as conn:
            conn.executemany(
                "DELETE FROM celeriac_results WHERE task_id = ?", [[t] for t in task_ids]
            )

    def add_to_set(self, key: str, member: str, *, expires: float | None) -> int:
        """Add to a set; see :meth:`ResultBackend.add_to_set`."""
        now = self.clock()
        expires_at = None if expires is None else now + expires
        with self._file.errors("add to a set"), self._file.db.transaction() as conn:
            conn.execute("DELETE FROM celeriac_sets WHERE key = ? AND expires_at <= ?", [key, now])
            conn.execute(
                "INSERT OR IGNORE INTO celeriac_sets (key, member, expires_at) VALUES (?, ?, ?)",
                [key, member, expires_at],
            )
            conn.execute("UPDATE celeriac_sets SET expires_at = ? WHERE key = ?", [expires_at, key])
            ((size,),) = conn.execute(
                "SELECT COUNT(*) FROM celeriac_sets WHERE key = ?", [key]
            ).fetchall()
        return int(size)

    def set_members(self, key: str) -> set[str]:
        """Members of a set; see :meth:`ResultBackend.set_members`."""
        with self._file.errors("read a set"):
            rows = self._file.db.read(
                "SELECT member FROM celeriac_sets WHERE key = ?"
                " AND (expires_at IS NULL OR expires_at > ?)",
                [key, self.clock()],
            )
        return {str(row[0]) for row in rows}

    def put_document(self, key: str, document: dict[str, Any], *, expires: float | None) -> None:
        """Store a document; see :meth:`ResultBackend.put_document`."""
        expires_at = None if expires is None else self.clock() + expires
        with self._file.errors("store a document"), self._file.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO celeriac_documents (key, document, expires_at)"
                " VALUES (?, ?, ?)",
                [key, json.dumps(document), expires_at],
            )

    def get_document(self, key: str) -> dict[str, Any] | None:
        """Read a document; see :meth:`ResultBackend.get_document`."""
        with self._file.errors("read a document"):
            rows = self._file.db.read(
                "SELECT document FROM celeriac_documents WHERE key = ?"
                " AND (expires_at IS NULL OR expires_at > ?)",
                [key, self.clock()],
            )
        return json.loads(rows[0][0]) if rows else None

    def cleanup(self) -> int:
        """Delete expired records; see :meth:`ResultBackend.cleanup`."""
        with self._file.errors("cleanup"), self._file.db.transaction() as conn:
            removed = 0
            for table in ("celeriac_results", "celeriac_sets", "celeriac_documents"):
                cursor = conn.execute(f"DELETE FROM {table} WHERE expires_at <= ?", [self.clock()])
                removed += cursor.rowcount
            return removed

    def close(self) -> None:
        """Close this thread's connections."""
        self._file.close()
        self._history_file.close()
