"""``Heartbeat``: a worker tells the result backend every two seconds that it is alive.

A thread of the worker's main process stores a ``WorkerEntry`` (``ResultBackend.record_worker``)
when the worker starts, every ``INTERVAL`` seconds while it runs (kept ``ONLINE_TTL``: a worker
killed without a word drops out of ``workers()`` that long after its last beat), and once more,
marked offline, as it stops (kept ``OFFLINE_TTL``, so that monitors can say it left). These are
Celery's worker-online, worker-heartbeat and worker-offline. ``Worker.run`` starts it and stops
it; ``task_history = False`` turns it off with the task events.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from celeriac.history import WorkerEntry

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

log = logging.getLogger("celeriac.worker")
INTERVAL = 2.0  # seconds between two heartbeats
ONLINE_TTL = 10.0  # seconds a heartbeat is shown: a few missed beats before a worker is gone
OFFLINE_TTL = 300.0  # seconds a worker that said goodbye is still shown, offline


class Heartbeat:
    """The heartbeat thread of one worker; see the module docstring."""

    def __init__(self, worker: Worker, interval: float = INTERVAL) -> None:
        self.worker = worker
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def entry(self, *, online: bool = True) -> WorkerEntry:
        """What the worker says of itself now."""
        worker = self.worker
        try:
            loadavg = tuple(round(x, 2) for x in os.getloadavg())
        except OSError:  # pragma: no cover - not on every platform
            loadavg = ()
        return WorkerEntry(
            hostname=worker.hostname,
            online=online,
            last_heartbeat=time.time(),
            pid=os.getpid(),
            concurrency=worker.concurrency,
            pool=worker.options.pool,
            active=len(worker.dispatcher.running),
            processed=worker.recorder.settled,
            loadavg=loadavg,
            queues=tuple(worker.queues),
        )

    def start(self) -> None:
        """Say the worker is online, then beat from a thread until :meth:`stop`."""
        if not self.worker.recorder.events.enabled:
            return
        self._beat(ONLINE_TTL)
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{self.worker.hostname}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and say the worker is offline."""
        self._stop.set()
        if self._thread is None:
            return
        self._thread.join(timeout=5.0)
        self._beat(OFFLINE_TTL, online=False)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat(ONLINE_TTL)

    def _beat(self, ttl: float, *, online: bool = True) -> None:
        try:
            self.worker.app.backend.record_worker(self.entry(online=online), ttl=ttl)
        except Exception as exc:  # a monitor's view, never worth stopping the worker for
            if not self._failing:
                log.warning("could not store the worker's heartbeat: %s", exc)
            self._failing = True
        else:
            self._failing = False
