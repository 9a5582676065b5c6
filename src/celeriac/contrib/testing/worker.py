"""``start_worker``: a real worker for an app, in a thread of the test process, as Celery's
embedded test worker.

    from celeriac.contrib.testing.worker import start_worker

    def test_add():
        with start_worker(app, perform_ping_check=False):
            assert add.delay(2, 2).get(timeout=10) == 4

The worker runs ``Worker.run`` (the same loop ``celeriac worker`` runs) without installing
signal handlers; leaving the block stops it warm and waits for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import CeleriacError
from celeriac.task import Task
from celeriac.worker import Worker, WorkerOptions

if TYPE_CHECKING:
    from celeriac.app import Celeriac

PING_TASK = "celery.ping"  # Celery's name: a project's own check may send it by name


class WorkerStartError(CeleriacError):
    """The test worker did not answer its ping, or did not stop in time."""


def _pong() -> str:
    return "pong"


def ping_task(app: Celeriac) -> Task[[], str]:
    """Celery's ``celery.ping`` task (returns ``'pong'``), registered with ``app`` if it is not."""
    task = app.tasks.get(PING_TASK)
    if task is None:
        task = app.register_task(Task(_pong, app, name=PING_TASK))
    return task


@contextlib.contextmanager
def start_worker(
    app: Celeriac,
    concurrency: int = 1,
    pool: str = "solo",
    loglevel: str | int = "WARNING",
    logfile: str | None = None,
    perform_ping_check: bool = True,
    ping_task_timeout: float = 10.0,
    shutdown_timeout: float = 10.0,
    **options: Any,
) -> Iterator[Worker]:
    """Run a worker for ``app`` in a thread while the block runs; yields the ``Worker``.

    ``pool`` is ``'solo'`` (tasks run in the worker's thread), ``'threads'`` or
    ``'prefork'``; ``options`` are other ``WorkerOptions`` fields (``queues``, ``hostname``).
    With ``perform_ping_check``, it waits until the worker has run ``celery.ping``.
    ``loglevel`` and ``logfile`` are accepted for Celery's sake: the test run's logging is
    left as pytest set it.

    Raises:
        WorkerStartError: the ping did not come back within ``ping_task_timeout``, or the
            worker did not stop within ``shutdown_timeout``.
        ConfigurationError: a bad option or setting.
    """
    ping = ping_task(app)
    worker = Worker(
        app,
        WorkerOptions(
            concurrency=concurrency,
            pool=pool,
            shutdown_timeout=shutdown_timeout,
            install_signal_handlers=False,
            hostname=options.pop("hostname", f"gen{threading.get_ident()}@%h"),
            **options,
        ),
    )
    thread = threading.Thread(target=worker.run, name="celeriac-test-worker", daemon=True)
    thread.start()
    try:
        if perform_ping_check:
            try:
                answer = ping.delay().get(timeout=ping_task_timeout)
            except Exception as exc:
                raise WorkerStartError(f"the test worker did not answer its ping: {exc}") from exc
            if answer != "pong":
                raise WorkerStartError(f"the test worker answered its ping with {answer!r}")
        yield worker
    finally:
        worker.stop()
        thread.join(shutdown_timeout + 5.0)
        if thread.is_alive():
            raise WorkerStartError(f"the test worker did not stop within {shutdown_timeout}s")


__all__ = ["PING_TASK", "WorkerStartError", "ping_task", "start_worker"]
