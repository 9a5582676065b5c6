"""The event log, and how the history is indexed from it when someone reads it.

Workers do not write the history: their events process appends each frame of event rows
(``celeriac.event_rows``) to the backend's **event log** as it is, one Redis ``XADD`` or one
SQLite row a frame, a few microseconds of work for a hundred tasks. A task's history entry,
its indexes and the counts are made by whoever reads the history next: every history read
first **catches up** (:func:`catch_up`), which folds what the log holds past the
**index position** into the entries, a step at a time. So a busy worker on a machine that
nobody watches pays nothing for a history that nobody reads, and a dashboard that reads
pays for the indexing, once, in its own process (docs/design/monitoring.md).

A step (:meth:`EventLog.index`) is one atomic write of the store (one Redis script run, one
SQLite transaction) that merges a run of batches into their tasks' entries and moves the
position past them, **only if the position is still where the step began** (compare and
set): two readers catching up at once never index a batch twice; the one that lost reads the
position again and goes on from there. The live feed (``read_events``) reads the log itself,
so what a worker did shows in ``celeriac events`` without waiting for an index.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from celeriac.event_rows import frame_events
from celeriac.exceptions import BackendError
from celeriac.history import TaskEvent

log = logging.getLogger("celeriac.backends")

STEP_EVENTS = 300  # events one step writes (about 100 tasks: a few ms of the store's time)
READ_BATCHES = 20  # batches read from the log at a time
CATCH_UP_SECONDS = 1.0  # how long a read may spend indexing before it answers
FEED_SECONDS = 10.0  # indexed batches stay in the log this long, for the live feed's readers
ERROR_LOG_INTERVAL = 60.0  # seconds between two warnings that a read could not index


@dataclass(frozen=True)
class LogBatch:
    """One frame of event rows in the log, where it sits (``position``: a Redis stream id,
    a SQLite row id; ordered), whose events they are, and the retention its writer asked."""

    position: str
    hostname: str
    frame: bytes
    retention: float | None


@runtime_checkable
class EventLog(Protocol):
    """What :func:`catch_up` needs of a store."""

    def index_position(self) -> str:
        """The position of the last batch indexed ('' when none was)."""
        ...

    def batches_after(self, position: str, count: int) -> list[LogBatch]:
        """Up to ``count`` batches past ``position``, oldest first."""
        ...

    def index(self, after: str, batches: Sequence[LogBatch], events: Sequence[TaskEvent]) -> bool:
        """Merge ``events`` (those of ``batches``) into the history and move the position to
        the last batch's, if it is still ``after``; False (nothing written) if it is not."""
        ...


def catch_up(log: EventLog, seconds: float = CATCH_UP_SECONDS) -> int:
    """Index what the log holds past the position, step by step, for about ``seconds`` at
    most (what is left waits for the next read); returns how many events were indexed.

    Raises:
        BackendError: the store cannot be reached.
    """
    deadline = time.monotonic() + seconds
    done = 0
    position = log.index_position()
    ahead: deque[LogBatch] = deque()
    while True:
        if not ahead:
            ahead.extend(log.batches_after(position, READ_BATCHES))
            if not ahead:
                return done
        step: list[LogBatch] = []
        events: list[TaskEvent] = []
        while ahead and (not step or len(events) < STEP_EVENTS):
            batch = ahead.popleft()
            step.append(batch)
            events += frame_events(batch.frame, batch.hostname)
        if log.index(position, step, events):
            done += len(events)
            position = step[-1].position
        else:  # another reader indexed these: go on from where it got to
            position = log.index_position()
            ahead.clear()
        if time.monotonic() >= deadline:
            return done


def recent(events: Sequence[TaskEvent], retention: float | None, now: float) -> list[TaskEvent]:
    """``events`` without the tasks that were first seen longer than ``retention`` ago: the
    log may hold them (nobody read the history for that long), but their entries would be
    past their retention the moment they were written."""
    if retention is None:
        return list(events)
    horizon = now - retention
    old = {e.task_id for e in events if e.timestamp < horizon}
    return [e for e in events if e.task_id not in old] if old else list(events)


class Indexing:
    """One store's catching up, one thread of this process at a time: a read that finds
    another thread indexing waits for it rather than decoding the same batches again."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._error_logged = 0.0

    def __call__(self, seconds: float = CATCH_UP_SECONDS) -> int:
        """See :func:`catch_up`.

        Raises:
            BackendError: the store cannot be reached.
        """
        with self._lock:
            return catch_up(self._log, seconds)

    def before_read(self) -> None:
        """Catch up before a read. Indexing that fails (the store's write lock held too long,
        a store that refuses writes but not reads) is logged, once a minute at most, and the
        read answers with what is indexed: a read never fails for want of indexing."""
        try:
            self(CATCH_UP_SECONDS)
        except BackendError as exc:
            now = time.monotonic()
            if now - self._error_logged >= ERROR_LOG_INTERVAL:
                self._error_logged = now
                log.warning("the task history could not be indexed (read as it is): %s", exc)


__all__ = [
    "CATCH_UP_SECONDS",
    "FEED_SECONDS",
    "READ_BATCHES",
    "STEP_EVENTS",
    "EventLog",
    "Indexing",
    "LogBatch",
    "catch_up",
    "recent",
]
