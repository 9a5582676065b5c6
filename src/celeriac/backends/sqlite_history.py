"""Task history and events of the SQLite backend, in a file of its own beside the results
(``history_path``: ``celeriac.db`` keeps its history in ``celeriac.history.db``; tables in
``sqlite_history.sql``).

A file of its own, because a busy worker's events process writes the history every turn: in
the results' file, each of its transactions held the one write lock that the worker's main
process needs for its own turn (which then waited), and its pages went through the same WAL
and checkpoints. Apart, a worker draining no-ops on SQLite ran about a sixth faster, close to
one with no history at all (``docs/benchmarks.md``). A history is not a result: nothing waits
for it, so nothing needs it in the results' transaction either.

Workers append frames of event rows to the event log, ``celeriac_event_log``, one row a frame
(``append_events``: one short transaction for all a writer has). Every read of the history
first indexes what the log holds past the index position (``backends/history_log.py``): each
step is one write transaction that checks the position, writes each task of about a hundred
once (the step's events folded per task in Python, ``celeriac.history.fold``, then one
``executemany`` of an upsert that merges each fold into the stored row in SQL: a later state
wins unless it came from task-sent only, the earlier ``seen`` stays, the timeline grows; no
read first), and moves the position. Rows are kept in the order written (the rowid; the task
id is a UNIQUE index), so a write appends to the table's last pages. The live feed reads the
log. Searches use the ``seen`` index, newest first; by state, name, worker or text they scan
the rows (``instr``: case-sensitive, as the other backends).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from celeriac._sqlite.store import StoreFile
from celeriac.backends.history_log import (
    CATCH_UP_SECONDS,
    FEED_SECONDS,
    Indexing,
    LogBatch,
    recent,
)
from celeriac.event_rows import frame_events
from celeriac.history import (
    Folded,
    SecondStats,
    TaskEntry,
    TaskEvent,
    TaskPage,
    TaskQuery,
    WorkerEntry,
    fold,
    series,
    stats_by_second,
)
from celeriac.history import (
    timeline as ordered,
)

_TEXT = (
    "name",
    "args",
    "kwargs",
    "result",
    "exception",
    "traceback",
    "worker",
    "queue",
    "parent_id",
    "root_id",
    "group_id",
)
_TIMES = ("sent", "received", "started", "finished", "runtime")
_INSERTED = (*_TEXT, *_TIMES, "retries", "children", "progress")
_COLUMNS = f"task_id, state, {', '.join(_INSERTED)}, seen, state_time"
# Parameters by position (faster to bind than by name): the columns, then "takes" (see fold).
_UPSERT = (
    f"INSERT INTO celeriac_tasks ({_COLUMNS}, events)"
    f" VALUES ({', '.join('?' * (len(_INSERTED) + 5))})"
    " ON CONFLICT (task_id) DO UPDATE SET "
    + ", ".join(f"{c} = iif(excluded.{c} = '', {c}, excluded.{c})" for c in _TEXT)
    + ", "
    + ", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in (*_TIMES, "progress"))
    + ", retries = max(retries, excluded.retries)"
    ", children = iif(excluded.children = '[]', children, excluded.children)"
    f", state = iif(?{len(_INSERTED) + 6} AND excluded.state_time >= state_time,"
    " excluded.state, state)"
    f", state_time = iif(?{len(_INSERTED) + 6} AND excluded.state_time >= state_time,"
    " excluded.state_time, state_time)"
    ", seen = min(seen, excluded.seen)"
    ", events = events || excluded.events"
)


def _params(task_id: str, f: Folded) -> tuple[Any, ...]:
    """The upsert's parameters for one task: ``_COLUMNS``, events, takes."""
    get = f.patch.get
    children, progress = get("children"), get("progress")
    return (
        task_id,
        f.state,
        *[get(name, "") for name in _TEXT],
        *[get(name) for name in _TIMES],
        get("retries", 0),
        "[]" if not children else json.dumps(list(children)),
        None if progress is None else json.dumps(progress, default=str),
        f.seen,
        f.state_time,
        "".join(line + "\n" for line in f.lines),
        f.takes,
    )


def _entry(row: Sequence[Any]) -> TaskEntry:
    width = len(_INSERTED)
    values = dict(zip(_INSERTED, row[2 : 2 + width], strict=True))
    children, progress = values.pop("children"), values.pop("progress")
    return TaskEntry(
        task_id=str(row[0]),
        state=str(row[1]),
        **values,
        children=tuple(json.loads(children)),
        progress=None if progress is None else json.loads(progress),
        seen=float(row[2 + width]),
        state_time=float(row[3 + width]),
    )


def _where(query: TaskQuery) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column in ("state", "name", "worker"):
        value = getattr(query, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.since is not None:
        clauses.append("seen >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append("seen <= ?")
        params.append(query.until)
    if query.text:
        clauses.append("(instr(args, ?) > 0 OR instr(kwargs, ?) > 0 OR instr(result, ?) > 0)")
        params += [query.text] * 3
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _lines(text: str) -> list[TaskEvent]:
    return [TaskEvent.from_json(line) for line in text.splitlines() if line]


def history_path(path: str) -> str:
    """Where the history of the results in ``path`` is kept: ``.history`` before the file's
    extension (``jobs/celeriac.db`` -> ``jobs/celeriac.history.db``), or after a name that has
    none."""
    folder, name = os.path.split(path)
    stem, dot, extension = name.rpartition(".")
    if not stem:  # no extension ("celeriac"), or a dot file (".celeriac")
        return f"{path}.history"
    return os.path.join(folder, f"{stem}.history{dot}{extension}")


class SqliteHistory:
    """What ``SqliteBackend``'s history methods do, on its file (see the module docstring)."""

    def __init__(self, file: StoreFile, clock: Callable[[], float]) -> None:
        self._file = file
        self.clock = clock
        self._catch_up = Indexing(self)

    def append_events(
        self, hostname: str, frames: Sequence[bytes], *, retention: float | None
    ) -> None:
        """See ``ResultBackend.append_events``: one row a frame, in one transaction, which
        also drops what is past its retention, indexed or not (by the ``at`` index).

        Raises:
            BackendError: the file cannot be written.
        """
        if not frames:
            return
        now = time.time()  # the log's own clock (a test's clock does not move it)
        rows = [(now, hostname, retention, frame) for frame in frames]
        with self._file.errors("append events"), self._file.db.transaction() as conn:
            if retention is not None:
                conn.execute("DELETE FROM celeriac_event_log WHERE at < ?", [now - retention])
            conn.executemany(
                "INSERT INTO celeriac_event_log (at, hostname, retention, frame)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )

    def index_events(self, seconds: float) -> int:
        """See ``ResultBackend.index_events``.

        Raises:
            BackendError: the file cannot be read or written.
        """
        return self._catch_up(seconds)

    def history_lag(self) -> float:
        """See ``ResultBackend.history_lag``: the age of the first log row past the index
        position.

        Raises:
            BackendError: the file cannot be read.
        """
        position = int(self.index_position() or 0)
        with self._file.errors("read the event log"):
            ((appended,),) = self._file.db.read(
                "SELECT min(at) FROM celeriac_event_log WHERE id > ?", [position]
            )
        return 0.0 if appended is None else max(0.0, time.time() - float(appended))

    def _before_read(self) -> None:
        """Catch up first, waiting for the file's write lock no longer than that may take."""
        with self._file.deadline(CATCH_UP_SECONDS):
            self._catch_up.before_read()

    def index_position(self) -> str:
        """See ``history_log.EventLog``.

        Raises:
            BackendError: the file cannot be read.
        """
        with self._file.errors("read the history's index position"):
            return self._position(self._file.db.read)

    @staticmethod
    def _position(read: Callable[..., list[Any]]) -> str:
        rows = read("SELECT value FROM celeriac_history_marks WHERE name = 'indexed'")
        return str(rows[0][0]) if rows else ""

    def batches_after(self, position: str, count: int) -> list[LogBatch]:
        """See ``history_log.EventLog``.

        Raises:
            BackendError: the file cannot be read.
        """
        with self._file.errors("read the event log"):
            rows = self._file.db.read(
                "SELECT id, hostname, frame, retention FROM celeriac_event_log"
                " WHERE id > ? ORDER BY id LIMIT ?",
                [int(position or 0), count],
            )
        return [LogBatch(str(row[0]), str(row[1]), bytes(row[2]), row[3]) for row in rows]

    def index(self, after: str, batches: Sequence[LogBatch], events: Sequence[TaskEvent]) -> bool:
        """See ``history_log.EventLog``: one write transaction.

        Raises:
            BackendError: the file cannot be written.
        """
        last = batches[-1]
        events = recent(events, last.retention, self.clock())
        rows = [_params(task_id, f) for task_id, f in fold(events).items()]
        with self._file.errors("index the history"), self._file.db.transaction() as conn:
            if self._position(lambda sql: conn.execute(sql).fetchall()) != after:
                return False
            self._prune(conn, last.retention)
            conn.executemany(_UPSERT, rows)
            self._count(conn, events)
            conn.execute(
                "INSERT OR REPLACE INTO celeriac_history_marks VALUES ('indexed', ?)",
                [int(last.position)],
            )
            # what was indexed stays FEED_SECONDS longer, for the feed's readers
            conn.execute(
                "DELETE FROM celeriac_event_log WHERE id <= ? AND at < ?",
                [int(last.position), time.time() - FEED_SECONDS],
            )
        return True

    def _count(self, conn: sqlite3.Connection, events: Sequence[TaskEvent]) -> None:
        seconds = stats_by_second(events)
        if not seconds:
            return
        conn.executemany(
            "INSERT INTO celeriac_task_stats VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (second) DO UPDATE SET succeeded = succeeded + excluded.succeeded,"
            " failed = failed + excluded.failed, retried = retried + excluded.retried,"
            " runtime_sum = runtime_sum + excluded.runtime_sum,"
            " runtime_count = runtime_count + excluded.runtime_count,"
            " runtime_max = max(runtime_max, excluded.runtime_max)",
            [[second, *stats.as_tuple()] for second, stats in seconds.items()],
        )

    def _prune(self, conn: sqlite3.Connection, retention: float | None) -> None:
        """Delete the tasks first seen longer than ``retention`` ago (by the ``seen`` index:
        nothing is read when nothing is that old) and their per-second counts."""
        if retention is None:
            return
        horizon = self.clock() - retention
        conn.execute("DELETE FROM celeriac_tasks WHERE seen < ?", [horizon])
        conn.execute("DELETE FROM celeriac_task_stats WHERE second < ?", [horizon])

    def history_task(self, task_id: str) -> TaskEntry | None:
        """See ``ResultBackend.history_task``.

        Raises:
            BackendError: the file cannot be read.
        """
        self._before_read()
        with self._file.errors("read a task's history"):
            rows = self._file.db.read(
                f"SELECT {_COLUMNS}, events FROM celeriac_tasks WHERE task_id = ?", [task_id]
            )
        if not rows:
            return None
        timeline = ordered(_lines(rows[0][-1]))
        return replace(_entry(rows[0]), events=tuple(timeline))

    def history_tasks(self, query: TaskQuery) -> TaskPage:
        """See ``ResultBackend.history_tasks``.

        Raises:
            BackendError: the file cannot be read.
        """
        self._before_read()
        where, params = _where(query)
        with self._file.errors("search the history"):
            ((total,),) = self._file.db.read(f"SELECT count(*) FROM celeriac_tasks{where}", params)
            rows = self._file.db.read(
                f"SELECT {_COLUMNS} FROM celeriac_tasks{where}"
                " ORDER BY seen DESC, task_id DESC LIMIT ? OFFSET ?",
                [*params, query.limit, query.offset],
            )
        return TaskPage(tasks=tuple(_entry(row) for row in rows), total=int(total))

    def history_counts(self) -> dict[str, dict[str, int]]:
        """See ``ResultBackend.history_counts``.

        Raises:
            BackendError: the file cannot be read.
        """
        self._before_read()
        with self._file.errors("count the history"):
            rows = self._file.db.read(
                "SELECT state, name, count(*) FROM celeriac_tasks GROUP BY state, name"
            )
        counts: dict[str, dict[str, int]] = {}
        for state, name, count in rows:
            counts.setdefault(str(state), {})[str(name)] = int(count)
        return counts

    def history_series(self, since: float, bucket: float) -> list[dict[str, Any]]:
        """See ``ResultBackend.history_series``.

        Raises:
            BackendError: the file cannot be read.
            ValueError: ``bucket`` is not positive.
        """
        self._before_read()
        with self._file.errors("read the history's series"):
            rows = self._file.db.read(
                "SELECT * FROM celeriac_task_stats WHERE second >= ?", [int(since - bucket)]
            )
        seconds = {int(r[0]): SecondStats(*r[1:]) for r in rows}
        return series(seconds, since, bucket, self.clock())

    def read_events(self, cursor: str | None, limit: int = 1000) -> tuple[list[TaskEvent], str]:
        """See ``ResultBackend.read_events``. A cursor is ``<log row>.<events read of it>``.

        Raises:
            BackendError: the file cannot be read.
        """
        with self._file.errors("read events"):
            if cursor is None:
                ((last,),) = self._file.db.read("SELECT max(id) FROM celeriac_event_log")
                return [], f"{last or 0}.-1"
            row_text, _, done_text = cursor.partition(".")
            row, done = int(row_text or 0), int(done_text or -1)
            rows = self._file.db.read(
                "SELECT id, hostname, frame FROM celeriac_event_log"
                " WHERE id >= ? ORDER BY id LIMIT ?",
                [row, limit + 1],
            )
        found: list[TaskEvent] = []
        for number, hostname, frame in rows:
            events = frame_events(bytes(frame), str(hostname))
            start = done if number == row and done >= 0 else 0
            if number == row and done < 0:
                start = len(events)  # "-1": the row was already there when the reader began
            take = events[start : start + limit - len(found)]
            found += take
            cursor = f"{number}.{start + len(take)}"
            if len(found) >= limit:
                break
        return found, cursor

    def record_worker(self, entry: WorkerEntry, *, ttl: float) -> None:
        """See ``ResultBackend.record_worker``.

        Raises:
            BackendError: the file cannot be written.
        """
        now = self.clock()
        with self._file.errors("record a worker"), self._file.db.transaction() as conn:
            conn.execute("DELETE FROM celeriac_workers WHERE expires_at <= ?", [now])
            conn.execute(
                "INSERT OR REPLACE INTO celeriac_workers VALUES (?, ?, ?)",
                [entry.hostname, json.dumps(entry.to_dict()), now + ttl],
            )

    def workers(self) -> list[WorkerEntry]:
        """See ``ResultBackend.workers``.

        Raises:
            BackendError: the file cannot be read.
        """
        with self._file.errors("read the workers"):
            rows = self._file.db.read(
                "SELECT entry FROM celeriac_workers WHERE expires_at > ? ORDER BY hostname",
                [self.clock()],
            )
        return [WorkerEntry.from_dict(json.loads(row[0])) for row in rows]
