"""Task history and events of the memory backend: dicts and a deque, behind one lock.

It lives in one process, with nobody to spare the work for: what is appended to its event
log is indexed at once (the feed is the deque).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from celeriac.event_rows import frame_events
from celeriac.history import (
    FEED_LENGTH,
    SecondStats,
    TaskEntry,
    TaskEvent,
    TaskPage,
    TaskQuery,
    WorkerEntry,
    apply,
    matches,
    series,
    stats_by_second,
)
from celeriac.history import (
    timeline as ordered,
)


class MemoryHistory:
    """What ``MemoryBackend``'s history methods keep (see ``ResultBackend.record_events``)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, TaskEntry] = {}
        self._timelines: dict[str, list[TaskEvent]] = {}
        self._expiry: dict[str, float] = {}  # task id -> when its entry goes
        self._feed: deque[tuple[int, TaskEvent]] = deque(maxlen=FEED_LENGTH)
        self._numbers = itertools.count(1)
        self._seconds: dict[int, SecondStats] = {}
        self._workers: dict[str, tuple[WorkerEntry, float]] = {}

    def append_events(
        self, hostname: str, frames: Sequence[bytes], *, retention: float | None
    ) -> None:
        """See ``ResultBackend.append_events``: indexed at once."""
        events = [e for frame in frames for e in frame_events(frame, hostname)]
        with self._lock:
            self._prune()
            for event in events:
                entry = apply(self._entries.get(event.task_id), event)
                self._entries[event.task_id] = entry
                self._timelines.setdefault(event.task_id, []).append(event)
                if retention is not None:
                    self._expiry[event.task_id] = entry.seen + retention
                self._feed.append((next(self._numbers), event))
            for second, stats in stats_by_second(events).items():
                self._seconds.setdefault(second, SecondStats()).merge(stats)

    def index_events(self, seconds: float) -> int:
        """See ``ResultBackend.index_events``: nothing waits here."""
        return 0

    def history_lag(self) -> float:
        """See ``ResultBackend.history_lag``: nothing waits here."""
        return 0.0

    def _prune(self) -> None:
        now = self.clock()
        for task_id in [t for t, at in self._expiry.items() if at <= now]:
            del self._expiry[task_id], self._entries[task_id], self._timelines[task_id]

    def history_task(self, task_id: str) -> TaskEntry | None:
        """See ``ResultBackend.history_task``."""
        with self._lock:
            self._prune()
            entry = self._entries.get(task_id)
            if entry is None:
                return None
            timeline = ordered(self._timelines[task_id])
            return replace(entry, events=tuple(timeline))

    def history_tasks(self, query: TaskQuery) -> TaskPage:
        """See ``ResultBackend.history_tasks``."""
        with self._lock:
            self._prune()
            found = [e for e in self._entries.values() if matches(e, query)]
        found.sort(key=lambda e: (e.seen, e.task_id), reverse=True)
        page = found[query.offset : query.offset + query.limit]
        return TaskPage(tasks=tuple(page), total=len(found))

    def history_counts(self) -> dict[str, dict[str, int]]:
        """See ``ResultBackend.history_counts``."""
        counts: dict[str, dict[str, int]] = {}
        with self._lock:
            self._prune()
            for entry in self._entries.values():
                by_name = counts.setdefault(entry.state, {})
                by_name[entry.name] = by_name.get(entry.name, 0) + 1
        return counts

    def history_series(self, since: float, bucket: float) -> list[dict[str, Any]]:
        """See ``ResultBackend.history_series``."""
        with self._lock:
            seconds = {s: st for s, st in self._seconds.items() if s >= since - bucket}
        return series(seconds, since, bucket, self.clock())

    def read_events(self, cursor: str | None, limit: int = 1000) -> tuple[list[TaskEvent], str]:
        """See ``ResultBackend.read_events``."""
        with self._lock:
            last = self._feed[-1][0] if self._feed else 0
            if cursor is None:
                return [], str(last)
            after = int(cursor or 0)
            found = [(n, e) for n, e in self._feed if n > after][:limit]
        return [e for _, e in found], str(found[-1][0] if found else max(after, 0))

    def record_worker(self, entry: WorkerEntry, *, ttl: float) -> None:
        """See ``ResultBackend.record_worker``."""
        with self._lock:
            self._workers[entry.hostname] = (entry, self.clock() + ttl)

    def workers(self) -> list[WorkerEntry]:
        """See ``ResultBackend.workers``."""
        now = self.clock()
        with self._lock:
            live = [entry for entry, until in self._workers.values() if until > now]
        return sorted(live, key=lambda w: w.hostname)
