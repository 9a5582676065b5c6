"""The result backend contract: where task states, results and tracebacks live.

A record in a final state (SUCCESS, FAILURE, REVOKED) is never overwritten by a later ``store``:
the first final outcome wins. That is what keeps a worker that lost its lease (it froze, and
another worker ran the task meanwhile) from replacing the result that was already recorded.

One conformance suite (``tests/backends/``) runs the same assertions against every backend.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from celeriac import states
from celeriac.backends.history_log import CATCH_UP_SECONDS
from celeriac.event_rows import frames, row_of
from celeriac.history import TaskEntry, TaskEvent, TaskPage, TaskQuery, WorkerEntry
from celeriac.serialization import JSON

Clock = Callable[[], float]
AWAIT_SLICE = 1.0  # seconds: the longest wait in a thread of the default await_result


@dataclass(frozen=True)
class ResultRecord:
    """The stored state of one task.

    ``payload`` holds the serialized return value for SUCCESS, and the JSON description of the
    exception (see ``serialization.exception_to_dict``) for FAILURE, RETRY and REVOKED.
    ``meta`` holds small extras (the task name, the worker, child task ids).
    """

    task_id: str
    state: str
    payload: bytes = b"null"
    content_type: str = JSON
    date_done: float | None = None
    retries: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """True when the state is final."""
        return self.state in states.READY_STATES


class HistoryStore(Protocol):
    """Where a backend keeps task history: the methods of :class:`ResultBackend` below of the
    same names, which forward to it."""

    def append_events(
        self, hostname: str, frames: Sequence[bytes], *, retention: float | None
    ) -> None: ...
    def index_events(self, seconds: float) -> int: ...
    def history_lag(self) -> float: ...
    def history_task(self, task_id: str) -> TaskEntry | None: ...
    def history_tasks(self, query: TaskQuery) -> TaskPage: ...
    def history_counts(self) -> dict[str, dict[str, int]]: ...
    def history_series(self, since: float, bucket: float) -> list[dict[str, Any]]: ...
    def read_events(self, cursor: str | None, limit: int = 1000) -> tuple[list[TaskEvent], str]: ...
    def record_worker(self, entry: WorkerEntry, *, ttl: float) -> None: ...
    def workers(self) -> list[WorkerEntry]: ...


class ResultBackend(abc.ABC):
    """Stores one :class:`ResultRecord` per task id, with an expiry.

    Implementations are safe to use from several threads and processes. ``url`` is the address
    with any password masked, fit for logs.
    """

    url: str = ""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock

    @abc.abstractmethod
    def store_many(self, records: Sequence[ResultRecord], *, expires: float | None) -> list[bool]:
        """Store records that expire ``expires`` seconds from now (never when None).

        A record whose task already has a final state is not stored; its flag is False.

        Raises:
            BackendError: the backend cannot be reached.
        """

    def store(self, record: ResultRecord, *, expires: float | None = None) -> bool:
        """Store one record; False when the task already had a final state.

        Raises:
            BackendError: the backend cannot be reached.
        """
        return self.store_many([record], expires=expires)[0]

    @abc.abstractmethod
    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """The records that exist among ``task_ids`` (missing ones are simply absent)."""

    def get(self, task_id: str) -> ResultRecord | None:
        """The record of one task, or None when nothing was stored (state PENDING)."""
        return self.get_many([task_id]).get(task_id)

    @abc.abstractmethod
    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        """Block until the task's state is final, or ``timeout`` seconds pass.

        Returns the latest record either way (None when nothing was stored). Implementations
        are woken by the store where it can notify, rather than sleeping in a loop.
        """

    @abc.abstractmethod
    def forget(self, task_ids: Sequence[str]) -> None:
        """Delete the records of these tasks."""

    # -- workflow state: chords and DAG runs are built from these two primitives -------------
    @abc.abstractmethod
    def add_to_set(self, key: str, member: str, *, expires: float | None) -> int:
        """Add ``member`` to the set ``key`` and return the set's size, in one atomic step.

        Adding a member twice changes nothing, so a chord member that runs twice is counted
        once. The set expires ``expires`` seconds after its latest change.

        Raises:
            BackendError: the backend cannot be reached.
        """

    @abc.abstractmethod
    def set_members(self, key: str) -> set[str]:
        """The members of the set ``key`` (empty when it does not exist)."""

    @abc.abstractmethod
    def put_document(self, key: str, document: dict[str, Any], *, expires: float | None) -> None:
        """Store a JSON-ready dict under ``key`` (replacing any), expiring after ``expires``.

        Raises:
            BackendError: the backend cannot be reached.
        """

    @abc.abstractmethod
    def get_document(self, key: str) -> dict[str, Any] | None:
        """The dict stored under ``key``, or None."""

    @abc.abstractmethod
    def cleanup(self) -> int:
        """Delete expired records; return how many were deleted."""

    def close(self) -> None:
        """Release connections; the backend may be used again and reconnects."""

    # -- from asyncio code (docs/design/asyncio.md): a thread here, a native client on Redis ----
    async def await_result(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        """:meth:`wait` from a coroutine, without blocking the event loop; same return.

        By default :meth:`wait` runs in a thread of the loop's executor (SQLite's driver and
        the memory backend's condition have no asyncio side), in slices of at most
        ``AWAIT_SLICE`` seconds, so that a cancelled coroutine leaves no thread waiting long.
        The Redis backend waits on redis-py's asyncio client instead.

        Raises:
            BackendError: the backend cannot be reached.
        """
        loop = asyncio.get_running_loop()
        until = None if timeout is None else loop.time() + max(0.0, timeout)
        while True:
            left = AWAIT_SLICE if until is None else min(AWAIT_SLICE, until - loop.time())
            record = await asyncio.to_thread(self.wait, task_id, max(0.0, left))
            if (record is not None and record.ready) or (until is not None and left <= 0):
                return record

    async def aput_document(
        self, key: str, document: dict[str, Any], *, expires: float | None
    ) -> None:
        """:meth:`put_document` from a coroutine (see :meth:`await_result`).

        Raises:
            BackendError: the backend cannot be reached.
        """
        await asyncio.to_thread(self.put_document, key, document, expires=expires)

    # -- task history and events (``celeriac.history``; docs/design/monitoring.md) ------------
    # Every store keeps its history in a module of its own (``memory_history.py``,
    # ``sqlite_history.py``, ``redis_history.py``), set as ``self.history``; these forward to it.
    history: HistoryStore

    def append_events(
        self, hostname: str, frames: Sequence[bytes], *, retention: float | None
    ) -> None:
        """Append frames of ``hostname``'s event rows (``celeriac.event_rows.encode``) to the
        event log, as they are: the live feed reads them at once, the history indexes them
        when it is next read (``backends/history_log.py``) into entries kept ``retention``
        seconds after their task was first seen (None: forever). What is past its retention,
        indexed or not, is pruned on the way.

        Raises:
            BackendError: the backend cannot be reached.
        """
        self.history.append_events(hostname, frames, retention=retention)

    def record_events(self, events: Sequence[TaskEvent], *, retention: float | None) -> None:
        """:meth:`append_events` for TaskEvents (task-sent, task-progress, tests): frames of
        each host's, of 96 KB at most.

        Raises:
            BackendError: the backend cannot be reached.
        """
        by_host: dict[str, list[list[Any]]] = {}
        for event in events:
            by_host.setdefault(event.hostname, []).append(row_of(event))
        for hostname, rows in by_host.items():
            cut = [frame for frame, _count in frames(rows) if frame]
            self.append_events(hostname, cut, retention=retention)

    def index_events(self, seconds: float = CATCH_UP_SECONDS) -> int:
        """Index what the event log holds that the history does not yet, for about
        ``seconds`` at most; how many events it indexed. Every history read does this first;
        the dashboard also does it every half second, so that its reads find little to do.

        Raises:
            BackendError: the backend cannot be reached.
        """
        return self.history.index_events(seconds)

    def history_lag(self) -> float:
        """How many seconds the oldest event not yet indexed has waited in the event log
        (0.0: the history is up to date): a reader's hint that newer tasks are still to come.

        Raises:
            BackendError: the backend cannot be reached.
        """
        return self.history.history_lag()

    def history_task(self, task_id: str) -> TaskEntry | None:
        """One task's history entry with its timeline (``events``), or None.

        Raises:
            BackendError: the backend cannot be reached.
        """
        return self.history.history_task(task_id)

    def history_tasks(self, query: TaskQuery) -> TaskPage:
        """The entries that match ``query``, newest first (by the time first seen), one page
        of them (without their timelines), and how many matched.

        Raises:
            BackendError: the backend cannot be reached.
        """
        return self.history.history_tasks(query)

    def history_counts(self) -> dict[str, dict[str, int]]:
        """How many tasks of the history are in each state: ``{state: {task name: count}}``.

        Raises:
            BackendError: the backend cannot be reached.
        """
        return self.history.history_counts()

    def history_series(self, since: float, bucket: float) -> list[dict[str, Any]]:
        """What finished from ``since`` to now, per ``bucket`` seconds (whole seconds at
        least): dicts of ``start``, ``succeeded``, ``failed``, ``retried``, ``runtime_avg``,
        ``runtime_max``, oldest first, empty buckets included (see ``history.series``).

        Raises:
            BackendError: the backend cannot be reached.
            ValueError: ``bucket`` is not positive.
        """
        return self.history.history_series(since, bucket)

    def read_events(self, cursor: str | None, limit: int = 1000) -> tuple[list[TaskEvent], str]:
        """The live feed: up to ``limit`` events appended after ``cursor``, oldest first, and
        the cursor to read on from. ``cursor`` None means "from now": no events, and the
        cursor of the newest. The feed is the event log, whose indexed part is kept only
        ``history_log.FEED_SECONDS`` longer, so a reader that falls far behind misses events.

        Raises:
            BackendError: the backend cannot be reached.
        """
        return self.history.read_events(cursor, limit)

    def record_worker(self, entry: WorkerEntry, *, ttl: float) -> None:
        """Store a worker's heartbeat, shown by :meth:`workers` for ``ttl`` seconds.

        Raises:
            BackendError: the backend cannot be reached.
        """
        self.history.record_worker(entry, ttl=ttl)

    def workers(self) -> list[WorkerEntry]:
        """The workers whose latest heartbeat has not expired, by hostname.

        Raises:
            BackendError: the backend cannot be reached.
        """
        return self.history.workers()
