"""``Signature``: one task call written down (name, arguments, options) to be sent later.

A signature is plain data and survives a JSON round trip (``to_dict`` / ``Signature.from_dict``),
which is how the rest of a chain travels inside a message. Arguments given when the signature is
called are put *before* its own (``add.s(2).delay(4)`` calls ``add(4, 2)``), as in Celery, unless
it is immutable (``add.si(...)``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.result import AsyncResult, EagerResult


class Signature:
    """A task call to be made later; see the module docstring."""

    def __init__(
        self,
        task: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        options: dict[str, Any] | None = None,
        immutable: bool = False,
        app: Celeriac | None = None,
    ) -> None:
        self.task = task
        self.args: tuple[Any, ...] = tuple(args)
        self.kwargs: dict[str, Any] = dict(kwargs or {})
        self.options: dict[str, Any] = dict(options or {})
        self.immutable = immutable
        self._app = app

    @property
    def name(self) -> str:
        """The task's name."""
        return self.task

    @property
    def app(self) -> Celeriac:
        """The app that sends this signature (the current app when none was given)."""
        if self._app is None:
            from celeriac.app import current_app

            self._app = current_app()
        return self._app

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}({', '.join(parts)}){'!' if self.immutable else ''}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    # -- building ------------------------------------------------------------------------------
    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A copy with ``args`` put first, ``kwargs`` and ``options`` merged in (unless
        immutable, which keeps its own arguments)."""
        new = copy.copy(self)
        new.options = {**copy.deepcopy(self.options), **options}
        if not self.immutable:
            new.args = tuple(args or ()) + self.args
            new.kwargs = {**self.kwargs, **(kwargs or {})}
        else:
            new.kwargs = dict(self.kwargs)
        return new

    def set(self, **options: Any) -> Signature:
        """Set call options (``queue``, ``countdown``, ``priority``...) in place; returns self."""
        if "immutable" in options:
            self.immutable = bool(options.pop("immutable"))
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        """Make the signature ignore (or accept) arguments given when it is called."""
        self.immutable = immutable

    # -- sending -------------------------------------------------------------------------------
    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        """Send the call, with extra arguments put first and options merged in.

        Raises:
            PublishError: the message was not enqueued.
        """
        call = self.clone(args, kwargs, **options)
        task = call.app.tasks.get(call.task)
        return call.app.send_task(call.task, call.args, call.kwargs, task=task, **call.options)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        """Send the call with extra arguments; shortcut for :meth:`apply_async`."""
        return self.apply_async(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task here with these extra arguments (no message, no worker)."""
        call = self.clone(args, kwargs)
        return call.app.get_task(call.task)(*call.args, **call.kwargs)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[Any]:
        """Run the call here as a worker would and return its result."""
        call = self.clone(args, kwargs, **options)
        return call.app.get_task(call.task).apply(call.args, call.kwargs, **call.options)

    def __invert__(self) -> Any:
        """``~sig``: send the call and wait for its result."""
        return self.apply_async().get()

    # -- the wire form ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of this signature."""
        return {
            "task": self.task,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "options": self.options,
            "immutable": self.immutable,
            "subtask_type": None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celeriac | None = None) -> Signature:
        """Rebuild a signature written by :meth:`to_dict`."""
        return cls(
            data["task"],
            data.get("args", ()),
            data.get("kwargs", {}),
            options=data.get("options", {}),
            immutable=bool(data.get("immutable", False)),
            app=app,
        )


def signature(
    task: str | dict[str, Any] | Signature,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    app: Celeriac | None = None,
    **options: Any,
) -> Signature:
    """Celery's ``signature()``: from a task name, a dict written by ``to_dict``, or a copy."""
    if isinstance(task, Signature):
        return task.clone()
    if isinstance(task, dict):
        return Signature.from_dict(task, app)
    immutable = bool(options.pop("immutable", False))
    return Signature(task, args, kwargs, options=options, immutable=immutable, app=app)
