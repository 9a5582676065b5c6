"""``ResultSet``, several results handled as one, and ``GroupResult``, the tasks of a group
(saved in the backend, so it can be restored by id)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from celeriac.current import current_app
from celeriac.result.joining import assert_will_not_block
from celeriac.result.single import AsyncResult, EagerResult, group_key

if TYPE_CHECKING:
    from celeriac.app import Celeriac

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

    async def aget(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], None] | None = None,
        disable_sync_subtasks: bool = True,
    ) -> list[Any]:
        """:meth:`get` from asyncio code: the tasks awaited one after another (each with
        ``AsyncResult.aget``) within one ``timeout`` for all, the event loop running on.

        Raises:
            TimeoutError: not all finished within ``timeout`` seconds.
            BaseException: the first failed task's exception, when ``propagate``.
            RuntimeError: called inside a task (see the module docstring).
        """
        if not all(isinstance(r, EagerResult) for r in self.results):
            assert_will_not_block(disable_sync_subtasks)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        values: list[Any] = []
        for result in self.results:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            value = await result.aget(
                timeout=remaining, propagate=propagate, disable_sync_subtasks=disable_sync_subtasks
            )
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    def __await__(self) -> Generator[Any, None, list[Any]]:
        """``await results``: :meth:`aget` with no timeout."""
        return self.aget().__await__()

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
