"""``Signature``: one task call written down (name, arguments, options) to be sent later.

A signature is plain data and survives a JSON round trip (``to_dict`` / ``Signature.from_dict``),
which is how the rest of a chain travels inside a message. Arguments given when the signature is
called are put *before* its own (``add.s(2).delay(4)`` calls ``add(4, 2)``), as in Celery, unless
it is immutable (``add.si(...)``).

Every canvas type (``chain``, ``group``, ``chord``, ``xmap``, ``xstarmap``, ``chunks``) is a
``Signature`` too, named by its ``subtask_type`` in the dict form, and answers the same few
questions: ``freeze()`` gives it task ids and returns its result handle before anything is sent;
``_plan()`` turns it into documents and messages (``canvas.plan``).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from celeriac.canvas.plan import NOT_INHERITED, Context, Plan
from celeriac.current import current_app
from celeriac.result import AsyncResult

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.message import Message
    from celeriac.result import EagerResult, GroupResult
    from celeriac.task import Task

    Result = AsyncResult[Any] | GroupResult


class Signature:
    """A task call to be made later; see the module docstring."""

    subtask_type: ClassVar[str | None] = None
    _types: ClassVar[dict[str, type[Signature]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.subtask_type:
            Signature._types[cls.subtask_type] = cls

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
    def id(self) -> str | None:
        """The task id this call will have (set by :meth:`freeze`, or by ``task_id=``)."""
        value = self.options.get("task_id")
        return None if value is None else str(value)

    @property
    def app(self) -> Celeriac:
        """The app that sends this signature (the current app when none was given)."""
        if self._app is None:
            self._app = current_app()
        return self._app

    @property
    def type(self) -> Task[Any, Any]:
        """The registered task this signature calls.

        Raises:
            NotRegistered: no task of that name is registered with the app.
        """
        return self.app.get_task(self.task)

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
        # Options hold plain values or nested signatures (links); a copy must not share them.
        own = copy.deepcopy(self.options) if self.options else {}
        new.options = {**own, **options}
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

    def link(self, callback: Signature | dict[str, Any]) -> Signature | dict[str, Any]:
        """Apply ``callback`` with this call's result when it succeeds; returns ``callback``."""
        self._append_option("link", callback)
        return callback

    def link_error(self, errback: Signature | dict[str, Any]) -> Signature | dict[str, Any]:
        """Apply ``errback`` when this call fails; returns ``errback``.

        An errback whose function takes one free positional parameter receives the failed
        task's id; one that takes more receives ``(request, exc, traceback)`` (as Celery).
        """
        self._append_option("link_error", errback)
        return errback

    def on_error(self, errback: Signature | dict[str, Any]) -> Signature:
        """:meth:`link_error`, returning self so that it can be chained."""
        self.link_error(errback)
        return self

    def _append_option(self, key: str, sig: Signature | dict[str, Any]) -> None:
        entry = sig.to_dict() if isinstance(sig, Signature) else dict(sig)
        self.options[key] = [*as_list(self.options.get(key)), entry]

    def __or__(self, other: object) -> Signature:
        if not isinstance(other, Signature):
            return NotImplemented
        return self._chained(other)

    def _chained(self, other: Signature) -> Signature:
        """``chain(self, other)``: the chain type is found by its wire name, as
        :meth:`from_dict` finds every canvas type (``chain`` is built on this module)."""
        chain_type: Any = Signature._types["chain"]
        result: Signature = chain_type(self, other, app=self._app)
        return result

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

    async def aapply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """:meth:`apply_async` from asyncio code: the same message, published without
        blocking the event loop (``app.asend_task``).

        Raises:
            PublishError: the message was not enqueued.
        """
        call = self.clone(args, kwargs, **options)
        task = call.app.tasks.get(call.task)
        return await call.app.asend_task(
            call.task, call.args, call.kwargs, task=task, **call.options
        )

    async def adelay(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`delay` from asyncio code; see :meth:`aapply_async`.

        Raises:
            PublishError: the message was not enqueued.
        """
        return await self.aapply_async(args, kwargs)

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

    # -- the canvas protocol -------------------------------------------------------------------
    def freeze(self, _id: str | None = None, *, parent: Result | None = None) -> Result:
        """Give the call its task id now (``_id``, or a new one unless it has one) and return
        its result handle, before anything is sent."""
        if _id is not None:
            self.options["task_id"] = _id
        elif self.options.get("task_id") is None:
            self.options["task_id"] = str(uuid.uuid4())
        return AsyncResult(str(self.options["task_id"]), self.app, parent=parent)

    def _inherit(self, options: dict[str, Any]) -> None:
        """Take a container's options as defaults (the signature's own win)."""
        given = {k: v for k, v in options.items() if k not in NOT_INHERITED}
        self.options = {**given, **self.options}

    def _expanded(self) -> Signature:
        """The canvas this one stands for (``chunks`` stands for a group)."""
        return self

    def _leaves(self) -> list[Signature]:
        """Every task the canvas would run (after freeze), to record what never ran."""
        return [self]

    def _head_ids(self) -> list[str]:
        """Ids of the tasks sent first when the canvas is applied (after freeze)."""
        return [] if self.id is None else [self.id]

    def _terminal_id(self) -> str:
        """The id whose result is the canvas's result (after freeze)."""
        return str(self.id)

    def _plan(
        self, ctx: Context, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Plan:
        """The messages that apply this canvas with these extra arguments (after freeze).

        Raises:
            ConfigurationError, TypeError, MessageTooLarge: as ``Celeriac.build_message``.
        """
        call = self.clone(args, kwargs)
        return Plan(messages=[call_message(ctx, call.task, call.args, call.kwargs, call.options)])

    # -- the wire form ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of this signature."""
        return {
            "task": self.task,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "options": self.options,
            "immutable": self.immutable,
            "subtask_type": self.subtask_type,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celeriac | None = None) -> Signature:
        """Rebuild a signature (of any canvas type) written by :meth:`to_dict`.

        Raises:
            ValueError: an unknown ``subtask_type``.
        """
        kind = data.get("subtask_type")
        if kind:
            target = Signature._types.get(str(kind))
            if target is None:
                raise ValueError(f"unknown subtask_type {kind!r}")
            if target is not cls:
                return target.from_dict(data, app)
        return cls(
            data["task"],
            data.get("args", ()),
            data.get("kwargs", {}),
            options=data.get("options", {}),
            immutable=bool(data.get("immutable", False)),
            app=app,
        )


def as_list(value: Any) -> list[Any]:
    """``None`` as ``[]``, one item as ``[item]``, a list or tuple as a list."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def maybe_signature(value: Signature | dict[str, Any], app: Celeriac | None = None) -> Signature:
    """A signature from a signature or its dict form.

    Raises:
        TypeError: ``value`` is neither.
        ValueError: an unknown ``subtask_type``.
    """
    if isinstance(value, Signature):
        if app is not None and value._app is None:
            value._app = app
        return value
    if isinstance(value, dict):
        return Signature.from_dict(value, app)
    raise TypeError(f"expected a signature, not {type(value).__name__}: {value!r}")


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


def call_message(
    ctx: Context, name: str, args: Sequence[Any], kwargs: dict[str, Any], options: dict[str, Any]
) -> Message:
    """The message of one task call of a canvas, its ``link`` and ``link_error`` signatures
    put in its workflow (``links_workflow``).

    Raises:
        ConfigurationError, TypeError, MessageTooLarge: as ``Context.message``.
    """
    if options.get("link") or options.get("link_error"):
        options = {**options, "workflow": links_workflow(options, ctx.app)}
    return ctx.message(name, args, kwargs, options)


def links_workflow(options: dict[str, Any], app: Celeriac) -> dict[str, Any]:
    """The ``workflow`` of a message sent with these options: the given one, plus the
    ``link`` and ``link_error`` signatures, each given its task id now.

    Raises:
        TypeError: a link that is not a signature.
    """
    workflow = dict(options.get("workflow") or {})
    for key in ("link", "link_error"):
        entries = []
        for item in as_list(options.get(key)):
            sig = maybe_signature(item, app).clone()
            sig.freeze()
            entries.append(sig.to_dict())
        if entries:
            workflow[key] = [*as_list(workflow.get(key)), *entries]
    return workflow
