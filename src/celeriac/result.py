"""Handles on results: ``AsyncResult`` for a sent task, ``EagerResult`` for one run here,
``ResultSet`` for several, ``GroupResult`` for the tasks of a group.

``parent`` links the result of a chain's step to the step before it (set when the chain is
applied, in this process); ``children`` lists what a task caused, as its worker recorded it.

As in Celery, a task run by a worker may not wait for another task's result (``get()``): with
every pool process waiting, the task it waits for may never run. Inside a task, ``get()``
raises ``RuntimeError`` unless it is called within :func:`allow_join_result` or with
``disable_sync_subtasks=False``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.current import current_app
from celeriac.exceptions import TaskRevokedError, TimeoutError
from celeriac.request import Request
from celeriac.serialization import JSON, exception_from_dict, exception_to_dict, json_dumps

if TYPE_CHECKING:
    from celeriac.app import Celeriac

R = TypeVar("R")

E_WOULDBLOCK = (
    "Never call result.get() within a task!\n"
    "See https://docs.celeryq.dev/en/latest/userguide/tasks.html"
    "#avoid-launching-synchronous-subtasks"
)
_joins_denied: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "celeriac_joins_denied", default=False
)


@contextlib.contextmanager
def allow_join_result() -> Iterator[None]:
    """Let ``get()`` wait for other tasks inside this block, even inside a task (Celery's
    escape hatch: the caller takes the risk of a pool with every process waiting)."""
    token = _joins_denied.set(False)
    try:
        yield
    finally:
        _joins_denied.reset(token)


@contextlib.contextmanager
def denied_join_result() -> Iterator[None]:
    """Make ``get()`` raise inside this block (the worker runs every task in one)."""
    token = _joins_denied.set(True)
    try:
        yield
    finally:
        _joins_denied.reset(token)


def assert_will_not_block(disable_sync_subtasks: bool = True) -> None:
    """Refuse to wait for a result where waiting could deadlock the worker's pool.

    Raises:
        RuntimeError: called inside a task run by a worker, outside :func:`allow_join_result`,
            with ``disable_sync_subtasks`` true.
    """
    if disable_sync_subtasks and _joins_denied.get():
        raise RuntimeError(E_WOULDBLOCK)


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
        if record is None or not record.ready:
            raise TimeoutError(f"task {self.id} did not finish within {timeout} seconds")
        self._cached = record
        value = decode_record(self.app, record)
        if propagate and record.state == states.FAILURE:
            raise value
        if propagate and record.state == states.REVOKED:
            raise TaskRevokedError(f"task {self.id} was revoked: {value}")
        return value  # type: ignore[no-any-return]

    wait = get

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


ResultHandle: TypeAlias = "AsyncResult[Any] | ResultSet"


class ResultSet:
    """Several results handled as one (Celery's ``ResultSet``): ``get()`` waits for all of
    them and returns their values in order."""

    def __init__(
        self, results: Iterable[ResultHandle], app: Celeriac | None = None, **kwargs: Any
    ) -> None:
        self.results: list[ResultHandle] = list(results)
        self._app = app

    @property
    def app(self) -> Celeriac:
        """The app given, else the first result's, else the current app.

        Raises:
            ConfigurationError: no app is known and none exists.
        """
        if self._app is None:
            self._app = self.results[0].app if self.results else current_app()
        return self._app

    @app.setter
    def app(self, app: Celeriac) -> None:
        self._app = app

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(r.id for r in self.results)}]>"

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[ResultHandle]:
        return iter(self.results)

    def __getitem__(self, index: int) -> ResultHandle:
        return self.results[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultSet):
            return self.results == other.results
        return NotImplemented

    @property
    def id(self) -> str:
        """The ids of the results, joined (a set has no id of its own)."""
        return ",".join(r.id for r in self.results)

    # -- membership -------------------------------------------------------------------------
    def add(self, result: ResultHandle) -> None:
        """Add a result (once)."""
        if result not in self.results:
            self.results.append(result)

    def update(self, results: Iterable[ResultHandle]) -> None:
        """Add several results (each once)."""
        for result in results:
            self.add(result)

    def remove(self, result: ResultHandle | str) -> None:
        """Remove a result (or the result with that id).

        Raises:
            KeyError: it is not in the set.
        """
        if isinstance(result, str):
            result = AsyncResult(result, self.app)
        try:
            self.results.remove(result)
        except ValueError:
            raise KeyError(result) from None

    def discard(self, result: ResultHandle | str) -> None:
        """Remove a result if it is in the set."""
        with contextlib.suppress(KeyError):
            self.remove(result)

    def clear(self) -> None:
        """Remove every result."""
        self.results.clear()

    # -- state ------------------------------------------------------------------------------
    @property
    def children(self) -> list[ResultHandle]:
        """Celery's other name for ``results``."""
        return self.results

    def ready(self) -> bool:
        """True when every task has finished."""
        return all(r.ready() for r in self.results)

    def successful(self) -> bool:
        """True when every task succeeded."""
        return all(r.successful() for r in self.results)

    def failed(self) -> bool:
        """True when any task failed."""
        return any(r.failed() for r in self.results)

    def waiting(self) -> bool:
        """True when any task has not finished yet."""
        return not self.ready()

    def completed_count(self) -> int:
        """How many tasks succeeded (Celery's meaning)."""
        return sum(1 for r in self.results if r.successful())

    # -- waiting ----------------------------------------------------------------------------
    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], None] | None = None,
        disable_sync_subtasks: bool = True,
    ) -> list[Any]:
        """Wait for every task and return their results in order; see :meth:`join`.

        Raises:
            TimeoutError: not all finished within ``timeout`` seconds (in total).
            BaseException: the first failed task's exception, when ``propagate``.
            RuntimeError: called inside a task (see the module docstring).
        """
        return self.join(timeout, propagate, interval, callback, disable_sync_subtasks)

    def join(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], None] | None = None,
        disable_sync_subtasks: bool = True,
    ) -> list[Any]:
        """Wait for the tasks one after another, within one ``timeout`` for all.

        With ``callback``, it is called with ``(task_id, value)`` for each task and the list
        is not returned (it is empty), as in Celery.

        Raises:
            TimeoutError: not all finished within ``timeout`` seconds.
            BaseException: the first failed task's exception, when ``propagate``.
            RuntimeError: called inside a task (see the module docstring).
        """
        if not all(isinstance(r, EagerResult) for r in self.results):
            assert_will_not_block(disable_sync_subtasks)
        deadline = None if timeout is None else time.monotonic() + timeout
        values: list[Any] = []
        for result in self.results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = result.get(
                timeout=remaining, propagate=propagate, disable_sync_subtasks=disable_sync_subtasks
            )
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    join_native = join

    def iterate(self, timeout: float | None = None, propagate: bool = True) -> Iterator[Any]:
        """The values, in order, each as soon as it is there (Celery's deprecated form).

        Raises:
            TimeoutError, BaseException, RuntimeError: as :meth:`join`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for result in self.results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            yield result.get(timeout=remaining, propagate=propagate)

    def revoke(self, terminate: bool = False, signal: str | int = "SIGTERM") -> None:
        """Revoke every task of the set."""
        for result in self.results:
            result.revoke(terminate=terminate, signal=signal)

    def forget(self) -> None:
        """Delete the stored results of every task of the set."""
        for result in self.results:
            result.forget()


class GroupResult(ResultSet):
    """The results of a group's tasks, in the group's order; ``get()`` waits for all of them.

    A group applied by celeriac is saved in the result backend, so ``GroupResult.restore(id)``
    finds it from any process.
    """

    def __init__(
        self,
        id: str,
        results: Sequence[ResultHandle],
        app: Celeriac | None = None,
        parent: ResultHandle | None = None,
    ) -> None:
        super().__init__(results, app or current_app())
        self._id = id
        self.parent = parent

    @property
    def id(self) -> str:
        """The group's id."""
        return self._id

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return self.id == other.id and self.results == other.results
        return other == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def save(self) -> GroupResult:
        """Store this group's shape in the backend, for :meth:`restore`; returns self.

        Raises:
            BackendError: the backend cannot be reached.
        """
        document = {"result": result_tree(self)}
        expires = self.app.conf.seconds("result_expires")
        self.app.backend.put_document(group_key(self.id), document, expires=expires)
        return self

    def delete(self) -> None:
        """Remove the saved shape (the tasks' results stay)."""
        self.app.backend.put_document(group_key(self.id), {}, expires=0.0)

    @classmethod
    def restore(cls, id: str, app: Celeriac | None = None) -> GroupResult | None:
        """The group saved under ``id``, or None."""
        app = app or current_app()
        document = app.backend.get_document(group_key(id))
        if not document or "result" not in document:
            return None
        restored = result_from_tree(app, document["result"])
        return restored if isinstance(restored, GroupResult) else None


def result_tree(result: ResultHandle) -> dict[str, Any]:
    """A JSON-ready description of a result handle and what it holds."""
    if isinstance(result, GroupResult):
        return {"id": result.id, "results": [result_tree(r) for r in result.results]}
    return {"id": result.id}


def result_from_tree(app: Celeriac, tree: dict[str, Any]) -> ResultHandle:
    """The result handle that :func:`result_tree` described."""
    if "results" in tree:
        members = [result_from_tree(app, t) for t in tree["results"]]
        return GroupResult(str(tree["id"]), members, app)
    return AsyncResult(str(tree["id"]), app)
