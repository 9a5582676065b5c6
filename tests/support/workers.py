"""A real worker loop (``Worker.run``) in a thread of the test process, for tests that need its
threads and timing rather than ``drain()``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celeriac import Celeriac
from celeriac.worker import Worker, WorkerOptions


@contextmanager
def worker_running(app: Celeriac, **options: Any) -> Iterator[Worker]:
    """A worker for ``app`` (``options`` as ``WorkerOptions``'s) that runs while the block does;
    stopped warm, and waited for, when it ends."""
    worker = Worker(app, WorkerOptions(install_signal_handlers=False, **options))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(15)
