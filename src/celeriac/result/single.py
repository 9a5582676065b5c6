"""``AsyncResult``, the handle on one sent task, and ``EagerResult``, one run here; how a stored
record reads back as a value."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.current import current_app
from celeriac.exceptions import TaskRevokedError, TimeoutError
from celeriac.request import Request
from celeriac.result.joining import assert_will_not_block
from celeriac.serialization import JSON, exception_from_dict, exception_to_dict, json_dumps

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.result.sets import ResultHandle

R = TypeVar("R")


def group_key(group_id: str) -> str:
    """The backend key of a saved ``GroupResult``."""
    return f"group:{group_id}"


def decode_record(app: Celeriac, record: ResultRecord) -> Any:
    """The value of a record: the return value, or the rebuilt exception for failure states."""
    if record.state in states.EXCEPTION_STATES:
        info = json.loads(record.payload or b"{}")
        if not isinstance(info, dict):
            return None
        exc = exception_from_dict(info)
        remote_tb = info.get("traceback")
        if remote_tb:
            exc.add_note(f"\nRemote traceback (task {record.task_id}):\n{remote_tb}")
        return exc
    value = app.serializer.loads(record.content_type, record.payload)
    if value is None and record.state == states.STARTED:
        # Celery's STARTED info: which process runs the task.
        return {"pid": record.meta.get("pid"), "hostname": record.meta.get("worker")}
    return value


def state_record(
    app: Celeriac, task_id: str, state: str, meta: Any, *, task: str, request: Request | None
) -> ResultRecord:
    """The record that ``Task.update_state`` stores: ``meta`` as the state's info.

    For a failure state, ``meta`` is an exception, or a dict that describes one (Celery's
    ``{'exc_type': ..., 'exc_message': ...}``); anything else becomes an ``Exception(meta)``.

    Raises:
        TypeError: ``meta`` does not serialize.
    """
    if state in states.EXCEPTION_STATES:
        if isinstance(meta, dict) and "exc_type" in meta:
            payload, content_type = json_dumps(meta), JSON
        else:
            exc = meta if isinstance(meta, BaseException) else Exception(meta)
            payload, content_type = json_dumps(exception_to_dict(exc)), JSON
    else:
        payload, content_type = app.serializer.dumps_result(meta)
    info: dict[str, Any] = {"task": task}
    if request is not None and request.hostname:
        info["worker"] = request.hostname
    retries = request.retries if request is not None else 0
    return ResultRecord(task_id, state, payload, content_type, time.time(), retries, info)


class AsyncResult(Generic[R]):
    """The state and result of a task call, read from the app's result backend."""

    def __init__(
        self, id: str, app: Celeriac | None = None, parent: ResultHandle | None = None
    ) -> None:
        self.id = id
        self.app = app or current_app()
        self.parent = parent
        self._cached: ResultRecord | None = None

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return self.id == other.id
        return other == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def task_id(self) -> str:
        """Celery's other name for ``id``."""
        return self.id

    def _record(self) -> ResultRecord | None:
        if self._cached is not None:
            return self._cached
        record = self.app.backend.get(self.id)
        if record is not None and record.ready:
            self._cached = record
        return record

    @property
    def state(self) -> str:
        """The task's state; ``PENDING`` when nothing is known of it yet."""
        record = self._record()
        return record.state if record is not None else states.PENDING

    status = state

    @property
    def result(self) -> Any:
        """The return value, or the exception for failed, retried and revoked tasks."""
        record = self._record()
        return None if record is None else decode_record(self.app, record)

    info = result

    @property
    def traceback(self) -> str | None:
        """The remote traceback of a failed task."""
        record = self._record()
        if record is None or record.state not in states.EXCEPTION_STATES:
            return None
        info = json.loads(record.payload or b"{}")
        return info.get("traceback") if isinstance(info, dict) else None

    @property
    def date_done(self) -> datetime.datetime | None:
        """When the task reached its final state (UTC)."""
        record = self._record()
        if record is None or record.date_done is None:
            return None
        return datetime.datetime.fromtimestamp(record.date_done, tz=datetime.UTC)

    @property
    def retries(self) -> int:
        """How many times the task was retried."""
        record = self._record()
        return 0 if record is None else record.retries

    @property
    def name(self) -> str | None:
        """The task's name, when the worker recorded it."""
        record = self._record()
        return None if record is None else record.meta.get("task")

    @property
    def children(self) -> list[AsyncResult[Any]]:
        """The tasks this one caused (its follow-ups and the calls it sent), once it is done."""
        record = self._record()
        ids = [] if record is None else record.meta.get("children") or []
        return [AsyncResult(str(task_id), self.app) for task_id in ids]

    @property
    def worker(self) -> str | None:
        """The worker that recorded the state."""
        record = self._record()
        return None if record is None else record.meta.get("worker")

    def ready(self) -> bool:
        """True when the task succeeded, failed or was revoked."""
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        """True when the task succeeded."""
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        """True when the task failed."""
        return self.state == states.FAILURE

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
    ) -> R:
        """Wait for the task to finish and return its result.

        The wait is woken by the backend, not a sleep loop; ``interval`` is accepted for
        Celery compatibility and ignored.

        Raises:
            TimeoutError: the task did not finish within ``timeout`` seconds.
            BaseException: the task's own exception (with the remote traceback as a note)
                when it failed and ``propagate`` is true.
            TaskRevokedError: the task was revoked and ``propagate`` is true.
            RuntimeError: called inside a task (see the module docstring).
        """
        self._check_join(disable_sync_subtasks)
        record = self._cached or self.app.backend.wait(self.id, timeout)
        return self._outcome(record, timeout, propagate)

    wait = get

    def _outcome(self, record: ResultRecord | None, timeout: float | None, propagate: bool) -> R:
        """What :meth:`get` and :meth:`aget` return (or raise) once the wait is over.

        Raises:
            TimeoutError, BaseException, TaskRevokedError: as :meth:`get`.
        """
        if record is None or not record.ready:
            raise TimeoutError(f"task {self.id} did not finish within {timeout} seconds")
        self._cached = record
        value = decode_record(self.app, record)
        if propagate and record.state == states.FAILURE:
            raise value
        if propagate and record.state == states.REVOKED:
            raise TaskRevokedError(f"task {self.id} was revoked: {value}")
        return value  # type: ignore[no-any-return]

    async def aget(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
    ) -> R:
        """:meth:`get` from asyncio code: the event loop runs on while it waits (the backend's
        ``await_result``: on Redis, redis-py's asyncio client, woken by the store).

        Raises:
            TimeoutError: the task did not finish within ``timeout`` seconds.
            BaseException: the task's own exception when it failed and ``propagate`` is true.
            TaskRevokedError: the task was revoked and ``propagate`` is true.
            RuntimeError: called inside a task (see the module docstring).
        """
        self._check_join(disable_sync_subtasks)
        record = self._cached or await self.app.backend.await_result(self.id, timeout)
        return self._outcome(record, timeout, propagate)

    def __await__(self) -> Generator[Any, None, R]:
        """``await result``: :meth:`aget` with no timeout, the task's exception raised."""
        return self.aget().__await__()

    def _check_join(self, disable_sync_subtasks: bool) -> None:
        assert_will_not_block(disable_sync_subtasks)

    def revoke(self, terminate: bool = False, signal: str | int = "SIGTERM") -> None:
        """Stop the task before it runs; with ``terminate``, kill it where it runs."""
        self.app.control.revoke(self.id, terminate=terminate, signal=signal)

    def forget(self) -> None:
        """Delete the stored result."""
        self._cached = None
        self.app.backend.forget([self.id])


class EagerResult(AsyncResult[R]):
    """The result of a task run in this process by ``apply()`` (or ``task_always_eager``)."""

    def __init__(self, id: str, app: Celeriac, record: ResultRecord) -> None:
        super().__init__(id, app)
        self._cached = record

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"

    def _record(self) -> ResultRecord | None:
        return self._cached

    def _check_join(self, disable_sync_subtasks: bool) -> None:
        """An eager result is already here: reading it never waits."""

    def forget(self) -> None:
        """Nothing is stored for an eager result, so there is nothing to delete."""
