"""``xmap``, ``xstarmap`` and ``chunks``: many calls of one task in few messages.

``xsum.map([range(10), range(100)])`` is one task message that applies ``xsum`` to each item
and returns the list of results; ``add.starmap(zip(a, b))`` applies ``add(*item)``. The message
names the task itself (so that any worker that has the task can run it) and carries
``{"xmap": "map"}`` (or ``"starmap"``) in its workflow; the pool child reads it
(``canvas.calls``). ``add.chunks(zip(a, b), 10)`` splits the items into ``xstarmap`` tasks of 10
and applies them as a group. Items are stored as lists (tuples, ranges and iterators included),
since that is what JSON carries.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.canvas.container import aapply_canvas, apply_canvas
from celeriac.canvas.group import group as Group  # "group" is also a method of chunks
from celeriac.canvas.plan import Context, Plan
from celeriac.canvas.signature import Signature, call_message, maybe_signature

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.result import EagerResult, GroupResult


def _plain(item: Any) -> Any:
    if isinstance(item, tuple | range | set | frozenset | Iterator):
        return list(item)
    return item


class xmap(Signature):
    """One task applying ``task`` to each item of ``it``; immutable (a previous step's result
    is not added), as in Celery."""

    subtask_type = "xmap"
    mode = "map"

    def __init__(
        self,
        task: Signature | dict[str, Any],
        it: Iterable[Any],
        *,
        app: Celeriac | None = None,
        **options: Any,
    ) -> None:
        inner = maybe_signature(task, app)
        kwargs = {"task": inner.to_dict(), "it": [_plain(item) for item in it]}
        super().__init__(
            f"celery.{self.mode}",
            (),
            kwargs,
            options=options,
            immutable=True,
            app=app or inner._app,
        )

    def _inner(self) -> Signature:
        return maybe_signature(self.kwargs["task"], self._app)

    def _call_options(self, **options: Any) -> dict[str, Any]:
        inner = self._inner()
        merged = {**inner.options, **self.options, **options}
        merged["workflow"] = {**(merged.get("workflow") or {}), "xmap": self.mode}
        return merged

    def _plan(
        self, ctx: Context, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Plan:
        inner = self._inner()
        call_args = [self.kwargs["it"], *inner.args]
        message = call_message(ctx, inner.task, call_args, inner.kwargs, self._call_options())
        return Plan(messages=[message])

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Send the one task; eagerly when ``task_always_eager`` is set.

        Raises:
            PublishError: the message was not enqueued.
        """
        if self.app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        return apply_canvas(self, (), {}, options)

    async def aapply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """:meth:`apply_async` from asyncio code, without blocking the event loop.

        Raises:
            PublishError: the message was not enqueued.
        """
        if self.app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        return await aapply_canvas(self, (), {}, options)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[Any]:
        """Run it here and return the list of results."""
        inner = self._inner()
        options = self._call_options(**options)
        options.setdefault("task_id", self.id)
        call_args = [self.kwargs["it"], *inner.args]
        return self.app.get_task(inner.task).apply(call_args, inner.kwargs, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> list[Any]:
        """Call the task here for each item (no message, no worker)."""
        inner = self._inner()
        if self.mode == "starmap":
            return [inner(*item) for item in self.kwargs["it"]]
        return [inner(item) for item in self.kwargs["it"]]

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celeriac | None = None) -> xmap:
        """Rebuild it from :meth:`to_dict`'s form."""
        kwargs = data.get("kwargs") or {}
        return cls(kwargs["task"], kwargs.get("it", []), app=app, **data.get("options", {}))


class xstarmap(xmap):
    """One task applying ``task(*item)`` to each item of ``it``."""

    subtask_type = "xstarmap"
    mode = "starmap"


class chunks(Signature):
    """``it`` (argument tuples) split into ``xstarmap`` tasks of ``n`` items, applied as a
    group; ``.group()`` gives that group."""

    subtask_type = "chunks"

    def __init__(
        self,
        task: Signature | dict[str, Any],
        it: Iterable[Any],
        n: int,
        *,
        app: Celeriac | None = None,
        **options: Any,
    ) -> None:
        if int(n) < 1:
            raise ValueError(f"chunks need a size of at least 1, not {n!r}")
        inner = maybe_signature(task, app)
        kwargs = {"task": inner.to_dict(), "it": [_plain(item) for item in it], "n": int(n)}
        super().__init__(
            "celery.chunks", (), kwargs, options=options, immutable=True, app=app or inner._app
        )

    def group(self) -> Group:
        """The group of ``xstarmap`` tasks; their ids follow from this one's ``task_id`` when it
        has one, so that the same chunks always make the same group."""
        items, size = self.kwargs["it"], int(self.kwargs["n"])
        parts = [items[start : start + size] for start in range(0, len(items), size)]
        options = dict(self.options)
        group_id = options.get("task_id")
        members = []
        for index, part in enumerate(parts):
            member = xstarmap(self.kwargs["task"], part, app=self._app)
            if group_id:
                member.options["task_id"] = str(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"{group_id}/{index}")
                )
            members.append(member)
        return Group(members, app=self._app, **options)

    def _expanded(self) -> Signature:
        return self.group()

    def _frozen_group(self) -> Group:
        made = self.group()
        made.freeze(self.id)
        return made

    def _leaves(self) -> list[Signature]:
        return self._frozen_group()._leaves()

    def _head_ids(self) -> list[str]:
        return self._frozen_group()._head_ids()

    def _terminal_id(self) -> str:
        return str(self.id)

    def _plan(
        self, ctx: Context, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Plan:
        return self._frozen_group()._plan(ctx, args, kwargs)

    def freeze(self, _id: str | None = None, *, parent: Any = None) -> GroupResult:
        """Give the chunks' group its id; returns its ``GroupResult``."""
        if _id is not None or self.options.get("task_id") is None:
            self.options["task_id"] = _id or str(uuid.uuid4())
        return self.group().freeze(parent=parent)

    def apply_async(  # type: ignore[override]
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        """Apply the group of chunks; see ``group.apply_async``.

        Raises:
            PublishError: the messages were not enqueued.
        """
        return self.group().apply_async(**options)

    async def aapply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        """:meth:`apply_async` from asyncio code; see ``group.aapply_async``.

        Raises:
            PublishError: the messages were not enqueued.
        """
        return await self.group().aapply_async(**options)

    def apply(  # type: ignore[override]
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        """Run the chunks here; see ``group.apply``."""
        return self.group().apply(**options)

    def __call__(self, *args: Any, **kwargs: Any) -> GroupResult:
        """Apply the group of chunks (as Celery)."""
        return self.apply_async()

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celeriac | None = None) -> chunks:
        """Rebuild it from :meth:`to_dict`'s form."""
        kwargs = data.get("kwargs") or {}
        return cls(
            kwargs["task"], kwargs.get("it", []), kwargs["n"], app=app, **data.get("options", {})
        )
