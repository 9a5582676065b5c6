"""``chain``: tasks run one after another, each receiving the result of the one before.

A chain travels with its messages: the first step's message carries the rest of the chain in
``workflow["chain"]``, and the worker that records a step's success publishes the next step with
the result put first in its arguments (unless the step is immutable). Nothing waits anywhere.

Before it is sent a chain is put in a normal form, as Celery does: nested chains are flattened,
``chunks`` become groups, a group followed by more steps becomes a chord whose body is the rest
of the chain, and a chord followed by more steps takes them into its body. A chain's steps are
thus plain signatures, with at most a group or chord at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.canvas.container import Container
from celeriac.canvas.group import chord, group
from celeriac.canvas.plan import Context, Plan
from celeriac.canvas.signature import Signature, maybe_signature

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.canvas.signature import Result


class chain(Container):
    """Run tasks one after another: ``chain(add.s(4, 4), mul.s(8))()`` or ``add.s(4, 4) |
    mul.s(8)``; the result is the last step's, whose ``parent`` is the step before."""

    subtask_type = "chain"

    def __init__(
        self,
        *tasks: Signature | dict[str, Any] | Iterable[Signature | dict[str, Any]],
        app: Celeriac | None = None,
        **options: Any,
    ) -> None:
        items: Iterable[Any] = tasks
        if len(tasks) == 1 and not isinstance(tasks[0], Signature | dict):
            items = tasks[0]
        steps: list[Signature] = []
        for item in items:
            step = maybe_signature(item, app)
            if isinstance(step, chain) and not (step.args or step.kwargs or step.options):
                steps.extend(step._children())
            else:
                steps.append(step)
        super().__init__(
            "celery.chain", options=options, app=app or next((s._app for s in steps), None)
        )
        self.tasks = steps

    def _children(self) -> list[Signature]:
        return self.tasks

    def _set_children(self, children: list[Signature]) -> None:
        self.tasks = children

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks) or "chain()"

    def link(self, callback: Signature | dict[str, Any]) -> Signature | dict[str, Any]:
        """Apply ``callback`` with the last step's result (as Celery)."""
        return self.tasks[-1].link(callback) if self.tasks else super().link(callback)

    def link_error(self, errback: Signature | dict[str, Any]) -> Signature | dict[str, Any]:
        """Apply ``errback`` when any step fails (as Celery: it is linked to every step)."""
        for step in self.tasks:
            step.link_error(errback)
        return errback

    # -- the canvas protocol -------------------------------------------------------------------
    def _normalized(self) -> list[Signature]:
        steps: list[Signature] = []
        for item in self.tasks:
            step = item._expanded()
            if isinstance(step, chain):
                inner = step._normalized()
                if inner and (step.args or step.kwargs):
                    inner[0] = inner[0].clone(step.args, step.kwargs)
                steps.extend(inner)
            else:
                steps.append(step)
        for step in steps:
            step._inherit(self.options)
        for index, step in enumerate(steps[:-1]):
            rest = steps[index + 1 :]
            if isinstance(step, group):
                body = rest[0] if len(rest) == 1 else chain(*rest, app=self._app)
                return [*steps[:index], chord(step, body, app=self._app)]
            if isinstance(step, chord):
                after = rest if step.body is None else [step.body, *rest]
                body = after[0] if len(after) == 1 else chain(*after, app=self._app)
                merged = chord(step.header, body, app=self._app)
                merged.options = dict(step.options)
                return [*steps[:index], merged]
        return steps

    def freeze(self, _id: str | None = None, *, parent: Result | None = None) -> Result:
        """Normalize the chain and give every step its id; the last step's result is returned,
        with ``parent`` links back to the first.

        Raises:
            ValueError: the chain is empty.
        """
        self.tasks = self._normalized()
        if not self.tasks:
            raise ValueError("an empty chain cannot be applied")
        result = parent
        for index, step in enumerate(self.tasks):
            last = index == len(self.tasks) - 1
            result = step.freeze(_id if last else None, parent=result)
        assert result is not None
        return result

    def _leaves(self) -> list[Signature]:
        return [leaf for step in self.tasks for leaf in step._leaves()]

    def _head_ids(self) -> list[str]:
        return self.tasks[0]._head_ids()

    def _terminal_id(self) -> str:
        return self.tasks[-1]._terminal_id()

    def _plan(
        self, ctx: Context, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Plan:
        args, kwargs = self._partial(args, kwargs)
        first, rest = self.tasks[0], self.tasks[1:]
        if not rest:
            return first._plan(ctx, args, kwargs)
        extra = {**ctx.extra, "chain": [step.to_dict() for step in rest]}
        return first._plan(ctx.but(extra=extra), args, kwargs)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run the steps here, one after another; stops at the first failure, whose result is
        then the one returned."""
        sig, _, now = self._prepared(options)
        assert isinstance(sig, chain)
        call_args, call_kwargs = sig._partial(args or (), kwargs)
        last: Any = None
        for step in sig.tasks:
            result = step.apply(call_args, call_kwargs, **now)
            result.parent, last, now = last, result, {}
            if not result.successful():
                break
            call_args, call_kwargs = (result.get(),), {}
        return last

    # -- the wire form ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The dict form: Celery's ``celery.chain`` with its steps in ``kwargs['tasks']``."""
        data = super().to_dict()
        data["kwargs"] = {**self.kwargs, "tasks": [t.to_dict() for t in self.tasks]}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celeriac | None = None) -> chain:
        """Rebuild a chain written by :meth:`to_dict`."""
        kwargs = dict(data.get("kwargs") or {})
        tasks = [maybe_signature(t, app) for t in kwargs.pop("tasks", [])]
        new = cls(app=app, **data.get("options", {}))
        new.tasks = tasks
        new.args, new.kwargs = tuple(data.get("args") or ()), kwargs
        new.immutable = bool(data.get("immutable", False))
        return new


def steps_from(steps: Sequence[dict[str, Any]], app: Celeriac) -> Signature:
    """The canvas made of a chain's remaining steps (as carried in ``workflow['chain']``).

    Raises:
        ValueError: no steps, or an unknown ``subtask_type``.
    """
    if not steps:
        raise ValueError("no steps")
    if len(steps) == 1:
        return maybe_signature(steps[0], app)
    return chain(*steps, app=app)
