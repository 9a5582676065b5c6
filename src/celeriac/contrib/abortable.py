"""Tasks that can be asked to stop, as Celery's ``celery.contrib.abortable``.

The caller marks the call ABORTED in the result backend; the task, which must be written to
check, looks from time to time and stops when it sees the mark::

    @app.task(bind=True, base=AbortableTask)
    def long_task(self):
        for item in work():
            if self.is_aborted():
                return "aborted"
            handle(item)

    result = long_task.delay()
    AbortableAsyncResult(result.id).abort()

Aborting asks, it does not kill (``revoke(terminate=True)`` does). ABORTED is not a final
state: the task's own outcome replaces it when the task ends, and a task that already ended
keeps its state.
"""

from __future__ import annotations

import time
from typing import Any

from celeriac.backends.base import ResultRecord
from celeriac.result import AsyncResult
from celeriac.task import Task

__all__ = ["ABORTED", "AbortableAsyncResult", "AbortableTask"]

ABORTED = "ABORTED"


class AbortableAsyncResult(AsyncResult[Any]):
    """A result handle that can ask its task to stop."""

    def is_aborted(self) -> bool:
        """True when the call was asked to stop and has not ended since."""
        return self.state == ABORTED

    def abort(self) -> bool:
        """Ask the task to stop: store the ABORTED state (nothing changes for a task that
        already ended). Returns True when the mark was stored.

        Raises:
            BackendError: the backend cannot be reached.
        """
        record = ResultRecord(self.id, ABORTED, date_done=time.time(), meta={})
        expires = self.app.conf.seconds("result_expires")
        return self.app.backend.store(record, expires=expires)


class AbortableTask(Task[Any, Any]):
    """A task base class (``base=AbortableTask``) whose calls can check
    :meth:`is_aborted`."""

    def AsyncResult(self, task_id: str) -> AbortableAsyncResult:
        """An abortable handle on a call of this task."""
        return AbortableAsyncResult(task_id, self.app)

    def is_aborted(self, **kwargs: Any) -> bool:
        """True when this call (or ``task_id=``) was asked to stop."""
        task_id = kwargs.get("task_id") or self.request.id
        if task_id is None:
            return False
        return self.AsyncResult(task_id).is_aborted()
