"""``HistoryWriter``: a thread that appends a worker's task events to the backend's event log.

It runs in the worker's events process (``history_process.py``), or in the worker's own process
when it is drained (tests, burst mode) or its events process died. Events come in as frames of
event rows (``celeriac.event_rows``), as the main process encoded them: :meth:`submit_frames`
is a list append under a lock, and nothing here decodes them. Every ``INTERVAL`` seconds the
thread appends what came in, as it is, with its own backend connection (both backends keep one
connection a thread), ``APPEND_FRAMES`` frames a call at most: one round trip of ``XADD`` s,
or one short SQLite transaction. The history is indexed from the log by whoever reads it
(``backends/history_log.py``); the live feed shows the events as soon as they are appended.

A write that fails is logged (once a minute) and tried again at the next interval; at most
``MAX_PENDING_BYTES`` of frames wait (the oldest are dropped: events are for watching, never for
correctness). :meth:`flush` appends everything now, in the calling thread (a drain ended, the
worker stops); :meth:`stop` ends the thread after a last flush. See docs/design/monitoring.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from celeriac.event_rows import EventRow, frames

log = logging.getLogger("celeriac.worker")
INTERVAL = 0.5  # seconds between two appends of the thread
APPEND_FRAMES = 100  # frames one append call takes at most (96 KB each at most)
MAX_PENDING_BYTES = 64 * 1024 * 1024  # frames kept while the backend cannot take them
ERROR_LOG_INTERVAL = 60.0  # seconds between two warnings that events could not be written

Write = Callable[[Sequence[bytes]], None]  # appends frames to the event log


class HistoryWriter:
    """Appends one worker's frames of task events from a thread; see the module docstring."""

    def __init__(self, write: Write, name: str, interval: float = INTERVAL) -> None:
        self._write = write
        self.name = name
        self.interval = interval
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._lock = threading.Lock()  # guards _pending and _pending_bytes
        self._writing = threading.Lock()  # one writer at a time: the thread or a flush
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error_logged = 0.0

    @property
    def pending(self) -> int:
        """How many frames wait to be appended."""
        return len(self._pending)

    def submit_frames(self, new: Sequence[bytes]) -> None:
        """Hand over frames to be appended."""
        new = [frame for frame in new if frame]
        if new:
            with self._lock:
                self._pending += new
                self._pending_bytes += sum(len(frame) for frame in new)

    def submit_rows(self, rows: list[EventRow]) -> None:
        """Hand over a worker's event rows (``celeriac.event_rows.EventRow``), as frames."""
        if rows:
            self.submit_frames([frame for frame, _count in frames(rows)])

    def start(self) -> None:
        """Append from a thread every ``interval`` seconds until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread, then append what is left (in the calling thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        self.flush()

    def flush(self) -> None:
        """Append every pending frame now, in the calling thread."""
        self._write_pending()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._write_pending()

    def _write_pending(self) -> None:
        with self._writing:
            with self._lock:
                pending, self._pending, self._pending_bytes = self._pending, [], 0
            for start in range(0, len(pending), APPEND_FRAMES):
                try:
                    self._write(pending[start : start + APPEND_FRAMES])
                except Exception as exc:  # any store error: kept, tried again next interval
                    self._log_failure(exc)
                    self._restore(pending[start:])  # the backend is likely down: not the rest
                    return

    def _restore(self, frames_left: list[bytes]) -> None:
        with self._lock:
            self._pending = frames_left + self._pending
            self._pending_bytes += sum(len(frame) for frame in frames_left)
            dropped = 0
            while self._pending_bytes > MAX_PENDING_BYTES and len(self._pending) > 1:
                self._pending_bytes -= len(self._pending.pop(0))
                dropped += 1
        if dropped:
            log.warning("dropping %d frames of task events: the backend cannot take them", dropped)

    def _log_failure(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._error_logged >= ERROR_LOG_INTERVAL:
            self._error_logged = now
            log.warning("could not record task events (will retry): %s", exc)
