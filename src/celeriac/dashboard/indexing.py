"""The dashboard keeps the task history indexed while it runs.

Workers only append their events to the backend's event log; the history is indexed from it
by whoever reads it (``backends/history_log.py``). Every read catches up first, but a page that
finds a backlog (a busy hour, or nobody watched for a while) would then wait up to a second.
So a thread of the dashboard indexes every ``INTERVAL`` seconds, and pages find little left.
Several dashboards on one app share the work safely: each step is indexed once, by one of them.
"""

from __future__ import annotations

import logging
import threading
import time

from celeriac.backends.base import ResultBackend
from celeriac.exceptions import CeleriacError

log = logging.getLogger("celeriac.dashboard")
INTERVAL = 0.5  # seconds between two catch-ups when the log was empty
ERROR_LOG_INTERVAL = 60.0  # seconds between two warnings that the history could not be indexed


class BackgroundIndexer:
    """A daemon thread that calls ``backend.index_events`` until :meth:`stop`."""

    def __init__(self, backend: ResultBackend, interval: float = INTERVAL) -> None:
        self._backend = backend
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error_logged = 0.0

    def start(self) -> None:
        """Start indexing (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="history-index", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the step under way."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self._backend.index_events() > 0
            except CeleriacError as exc:  # the backend is away: try again later
                busy = False
                now = time.monotonic()
                if now - self._error_logged >= ERROR_LOG_INTERVAL:
                    self._error_logged = now
                    log.warning("could not index the task history (will retry): %s", exc)
            if not busy:
                self._stop.wait(self._interval)


__all__ = ["BackgroundIndexer"]
