"""What chain, group and chord share: they hold other signatures, and applying one freezes a
copy, plans it and publishes the plan (``apply_canvas``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac.canvas.asending import apublish_plan
from celeriac.canvas.plan import IMMEDIATE, Context, Plan, publish
from celeriac.canvas.signature import Signature, as_list

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.canvas.signature import Result


class Container(Signature):
    """What chain, group and chord share: they hold other signatures and send them."""

    def _children(self) -> list[Signature]:
        raise NotImplementedError

    def _set_children(self, children: list[Signature]) -> None:
        raise NotImplementedError

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A deep copy; ``args`` and ``kwargs`` go to the tasks that are sent first."""
        new = super().clone(args, kwargs, **options)
        assert isinstance(new, Container)
        new._set_children([child.clone() for child in self._children()])
        return new

    def _partial(
        self, args: Sequence[Any], kwargs: dict[str, Any] | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self.immutable:
            return self.args, dict(self.kwargs)
        return tuple(args) + self.args, {**self.kwargs, **(kwargs or {})}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Apply it (as Celery: calling a chain, group or chord sends it)."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Send it; eagerly when ``task_always_eager`` is set.

        Options apply to every task inside as defaults (a task's own options win), except
        ``countdown`` and ``eta``, which apply to the tasks sent now, and ``task_id``, which
        names the result returned (a chain's last step, a group, a chord's body).

        Raises:
            PublishError: the messages were not enqueued.
            ConfigurationError, TypeError, MessageTooLarge: a message cannot be built.
        """
        if self.app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        return apply_canvas(self, args or (), kwargs or {}, options)

    async def aapply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """:meth:`apply_async` from asyncio code: the same documents and messages, stored and
        published without blocking the event loop; eagerly when ``task_always_eager`` is set.

        Raises:
            PublishError: the messages were not enqueued.
            ConfigurationError, TypeError, MessageTooLarge: a message cannot be built.
        """
        if self.app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        return await aapply_canvas(self, args or (), kwargs or {}, options)

    def _prepared(self, options: dict[str, Any]) -> tuple[Container, Result, dict[str, Any]]:
        """A frozen copy with ``options`` taken in: the copy, its result, the options for the
        messages sent now."""
        sig = self.clone()
        assert isinstance(sig, Container)
        options = dict(options)
        for callback in as_list(options.pop("link", None)):
            sig.link(callback)
        for errback in as_list(options.pop("link_error", None)):
            sig.link_error(errback)
        task_id = options.pop("task_id", None)
        now = {k: options.pop(k) for k in IMMEDIATE if options.get(k) is not None}
        for key in ("parent_id", "root_id", "group_id", "add_to_parent", "throw"):
            value = options.pop(key, None)
            if value is not None and key != "add_to_parent":
                now[key] = value
        sig.options.update(options)
        return sig, sig.freeze(task_id), now


def apply_canvas(
    sig: Signature, args: Sequence[Any], kwargs: dict[str, Any], options: dict[str, Any]
) -> Any:
    """Freeze a copy of ``sig``, send it, and return its result handle.

    Raises:
        PublishError: the messages were not enqueued.
    """
    app, result, plan = plan_canvas(sig, args, kwargs, options)
    publish(app, plan)
    return result


async def aapply_canvas(
    sig: Signature, args: Sequence[Any], kwargs: dict[str, Any], options: dict[str, Any]
) -> Any:
    """:func:`apply_canvas` from asyncio code (``canvas.asending``).

    Raises:
        PublishError: the messages were not enqueued.
    """
    await sig.app.broker.aprepare_clock()
    app, result, plan = plan_canvas(sig, args, kwargs, options)
    await apublish_plan(app, plan)
    return result


def plan_canvas(
    sig: Signature, args: Sequence[Any], kwargs: dict[str, Any], options: dict[str, Any]
) -> tuple[Celeriac, Any, Plan]:
    """What :func:`apply_canvas` sends, before it is sent: the app, the result handle and
    the plan of a frozen copy of ``sig`` (``aapply_async`` publishes it from a coroutine).

    Raises:
        ConfigurationError, TypeError, MessageTooLarge: a message cannot be built.
    """
    frozen: Signature
    if isinstance(sig, Container):
        frozen, result, now = sig._prepared(options)
    else:
        frozen = sig.clone(**options)
        now = {k: frozen.options.pop(k) for k in IMMEDIATE if frozen.options.get(k) is not None}
        result = frozen.freeze()
    lineage = {k: now.pop(k) for k in ("parent_id", "root_id", "group_id") if k in now}
    now.pop("throw", None)
    ctx = Context(frozen.app, immediate=now, **lineage)
    return frozen.app, result, frozen._plan(ctx, args, kwargs)
