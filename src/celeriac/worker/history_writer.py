"""``HistoryWriter``: a thread that writes a worker's task events in bulk.

It runs in the worker's events process (``history_process.py``), or in the worker's own process
when it is drained (tests, burst mode) or its events process died. Events come in by
:meth:`HistoryWriter.submit` (a list append under a lock); every ``INTERVAL`` seconds the thread
writes what came in, with its own backend connection (both backends keep one connection a
thread), in chunks of at most ``CHUNK_TASKS`` tasks, each one ``record_events`` call: a short
SQLite transaction or one Redis script run of a few milliseconds, so that it never holds the
file's write lock or Redis for long. A task's received, started and outcome usually land in
the same write, folded into one entry write. A task shows in the history up to about a second
after its events.

A running task's events that are younger than ``HOLD`` wait for the next write, in the hope
that its outcome joins them (one entry write rather than two). A write that fails is logged
(once a minute) and tried again at the next interval; at most ``MAX_PENDING`` events wait (the
oldest are dropped: events are for watching, never for correctness). :meth:`flush` writes
everything now, in the calling thread (a drain ended, the worker stops); :meth:`stop` ends the
thread after a last flush. See docs/design/monitoring.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from celeriac.history import FAILED, REJECTED, RETRIED, REVOKED, SUCCEEDED, TaskEvent
from celeriac.middleware.events import EventRow, events_of

log = logging.getLogger("celeriac.worker")
INTERVAL = 0.5  # seconds between two writes of the thread
HOLD = 0.5  # seconds a running task's young events wait for its outcome
CHUNK_TASKS = 100  # tasks one record_events call writes at most (a few ms of backend time)
MAX_PENDING = 100_000  # events kept while the backend cannot take them, at most
ERROR_LOG_INTERVAL = 60.0  # seconds between two warnings that events could not be written
_ENDINGS = frozenset({SUCCEEDED, FAILED, RETRIED, REVOKED, REJECTED})

Write = Callable[[Sequence[TaskEvent]], None]


def chunks(events: Sequence[TaskEvent], size: int) -> list[list[TaskEvent]]:
    """``events`` cut into lists of at most ``size`` tasks each; a task's events stay in one
    list, in their order."""
    by_task: dict[str, list[TaskEvent]] = {}
    for event in events:
        by_task.setdefault(event.task_id, []).append(event)
    out: list[list[TaskEvent]] = []
    tasks = list(by_task.values())
    for start in range(0, len(tasks), size):
        out.append([e for group in tasks[start : start + size] for e in group])
    return out


def due(events: list[TaskEvent], now: float) -> tuple[list[TaskEvent], list[TaskEvent]]:
    """``events`` split into those to write now and those to hold (a running task's events
    younger than ``HOLD``)."""
    ended = {e.task_id for e in events if e.type in _ENDINGS}
    old = now - HOLD
    ready: list[TaskEvent] = []
    held: list[TaskEvent] = []
    for event in events:
        (ready if event.task_id in ended or event.timestamp <= old else held).append(event)
    return ready, held


class HistoryWriter:
    """Writes one worker's task events from a thread; see the module docstring."""

    def __init__(self, write: Write, name: str, hostname: str, interval: float = INTERVAL) -> None:
        self._write = write
        self.name = name
        self.hostname = hostname  # whose events: what the worker's rows leave out
        self.interval = interval
        self._pending: list[TaskEvent] = []
        self._lock = threading.Lock()  # guards _pending
        self._writing = threading.Lock()  # one writer at a time: the thread or a flush
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error_logged = 0.0

    @property
    def pending(self) -> int:
        """How many events wait to be written."""
        return len(self._pending)

    def submit(self, events: list[TaskEvent]) -> None:
        """Hand events over to be written (the caller no longer owns the list)."""
        if events:
            with self._lock:
                self._pending += events

    def submit_rows(self, rows: list[EventRow]) -> None:
        """Hand over a worker's event rows (``middleware.events.EventRow``) to be written."""
        self.submit(events_of(rows, self.hostname))

    def start(self) -> None:
        """Write from a thread every ``interval`` seconds until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread, then write what is left (in the calling thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        self.flush()

    def flush(self) -> None:
        """Write every pending event now, in the calling thread (held ones too)."""
        self._write_pending(everything=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._write_pending(everything=False)

    def _write_pending(self, *, everything: bool) -> None:
        with self._writing:
            with self._lock:
                events, self._pending = self._pending, []
            if not events:
                return
            held: list[TaskEvent] = []
            if not everything:
                events, held = due(events, time.time())
            failed = self._write_chunks(events)
            if failed or held:
                self._restore(failed + held)

    def _write_chunks(self, events: list[TaskEvent]) -> list[TaskEvent]:
        """Write ``events`` chunk by chunk; returns those not written (from the first chunk
        that failed on: the backend is likely down, no use trying the rest now)."""
        parts = chunks(events, CHUNK_TASKS)
        for number, part in enumerate(parts):
            try:
                self._write(part)
            except Exception as exc:  # any store error: kept, tried again next interval
                self._log_failure(len(events), exc)
                return [e for rest in parts[number:] for e in rest]
        return []

    def _restore(self, events: list[TaskEvent]) -> None:
        with self._lock:
            self._pending = events + self._pending
            if len(self._pending) > MAX_PENDING:
                dropped = len(self._pending) - MAX_PENDING
                log.warning("dropping %d task events: the backend could not take them", dropped)
                self._pending = self._pending[dropped:]

    def _log_failure(self, count: int, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._error_logged >= ERROR_LOG_INTERVAL:
            self._error_logged = now
            log.warning("could not record %d task events (will retry): %s", count, exc)
