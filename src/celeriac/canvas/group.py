"""``group``: tasks run in parallel; ``chord``: a group whose results go to one more task.

A group is its members' messages, published together with one ``publish_many``; its
``GroupResult`` is saved in the backend. A chord saves a document (``chord:<id>``: the body, the
ids of the tasks that end each header member, and the header's size) and sends the header with
``{"chord": {"id", "size"}}`` carried by each member's last task. The worker that records such a
task's success adds its id to the set ``chord:<id>:done`` (one atomic, idempotent step); the one
that brings the set to the header's size reads the members' results and publishes the body with
``publish_once``, so the body is enqueued once even if that step runs twice. The first failure
fails the chord: the body is recorded as FAILURE (``ChordError``) and its errbacks run.

A group that must report as one (the last step of a chord member's chain, a DAG node) becomes a
chord without a body: when it completes, its list of results is stored under the group's id.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.canvas.asending import apublish_plan
from celeriac.canvas.callbacks import failed_result
from celeriac.canvas.container import Container
from celeriac.canvas.flat import is_flat, plan_flat, send_flat
from celeriac.canvas.plan import Context, Plan, chord_key
from celeriac.canvas.signature import Signature, maybe_signature
from celeriac.exceptions import ChordError
from celeriac.ids import PAUSE_COLLECTOR, collector_paused
from celeriac.result import GroupResult, group_key, result_tree

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.canvas.signature import Result

Tasks = Signature | dict[str, Any] | Iterable[Signature | dict[str, Any]]


def _items(tasks: tuple[Tasks, ...]) -> Iterable[Any]:
    if len(tasks) == 1 and not isinstance(tasks[0], Signature | dict):
        return tasks[0]
    return tasks


class group(Container):
    """Run tasks in parallel: ``group(add.s(i, i) for i in range(10))()`` returns a
    ``GroupResult`` whose ``get()`` is the list of results, in order.

    Groups directly inside a group are flattened into it, as in Celery.
    """

    subtask_type = "group"

    def __init__(self, *tasks: Tasks, app: Celeriac | None = None, **options: Any) -> None:
        items = iter(_items(tasks))
        members = [maybe_signature(t, app) for t in itertools.islice(items, PAUSE_COLLECTOR)]
        if len(members) == PAUSE_COLLECTOR:  # a big group: see ids.collector_paused
            with collector_paused(PAUSE_COLLECTOR):
                members.extend(maybe_signature(t, app) for t in items)
        first_app = next((m._app for m in members), None)
        super().__init__("celery.group", options=options, app=app or first_app)
        self.tasks = members

    def _children(self) -> list[Signature]:
        return self.tasks

    def _set_children(self, children: list[Signature]) -> None:
        self.tasks = children

    def __repr__(self) -> str:
        return f"group([{', '.join(repr(t) for t in self.tasks)}])"

    def __or__(self, other: object) -> Signature:
        if not isinstance(other, Signature):
            return NotImplemented
        return chord(self, other, app=self._app)

    def link(self, callback: Signature | dict[str, Any]) -> Signature | dict[str, Any]:
        """As Celery: ``callback`` is linked, immutable, to the first task only. To run a task
        after all of them, use a chord."""
        sig = maybe_signature(callback, self._app).clone()
        sig.set(immutable=True)
        return self.tasks[0].link(sig) if self.tasks else super().link(sig)

    def skew(self, start: float = 1.0, stop: float | None = None, step: float = 1.0) -> group:
        """Spread the members' start over time, as Celery's: the first gets
        ``countdown=start``, each next one ``step`` more, up to ``stop`` (then ``stop`` again).
        Returns the group."""
        countdown = float(start)
        for member in self.tasks:
            member.set(countdown=countdown)
            following = countdown + step
            countdown = following if stop is None or following <= stop else countdown
        return self

    def link_error(self, errback: Signature | dict[str, Any]) -> Signature | dict[str, Any]:
        """Apply ``errback`` when any member fails (it is linked to every member)."""
        for member in self.tasks:
            member.link_error(errback)
        return errback

    # -- the canvas protocol -------------------------------------------------------------------
    def _flattened(self) -> list[Signature]:
        members: list[Signature] = []
        for item in self.tasks:
            member = item._expanded()
            if isinstance(member, group):
                inner = member._flattened()
                if member.args or member.kwargs:
                    inner = [m.clone(member.args, member.kwargs) for m in inner]
                members.extend(inner)
            else:
                members.append(member)
        for member in members:
            member._inherit(self.options)
        return members

    def freeze(self, _id: str | None = None, *, parent: Result | None = None) -> GroupResult:
        """Flatten the group and give it and its members their ids; returns the
        ``GroupResult``."""
        if _id is not None or self.options.get("task_id") is None:
            self.options["task_id"] = _id or str(uuid.uuid4())
        self.tasks = self._flattened()
        results = [member.freeze() for member in self.tasks]
        return GroupResult(str(self.options["task_id"]), results, self.app, parent=parent)

    def _leaves(self) -> list[Signature]:
        # The group itself too: its id holds the result when the group ends a chord member.
        return [leaf for member in self.tasks for leaf in member._leaves()] + [self]

    def _head_ids(self) -> list[str]:
        return [i for member in self.tasks for i in member._head_ids()]

    def _terminal_id(self) -> str:
        return str(self.id)

    def _plan(
        self, ctx: Context, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Plan:
        args, kwargs = self._partial(args, kwargs)
        group_id = str(self.id)
        if ctx.carry:
            return plan_fan_in(ctx, group_id, self.tasks, None, args, kwargs)
        plan = Plan(documents=[(group_key(group_id), {"result": result_tree(self.freeze())})])
        member_ctx = ctx.but(group_id=group_id)
        for member in self.tasks:
            plan.extend(member._plan(member_ctx, args, kwargs))
        return plan

    def apply_async(  # type: ignore[override]
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        """Send every member with one ``publish_many``; see ``Container.apply_async``. A flat
        group of plain signatures takes a fast path (``canvas.flat``) to the same messages.

        Raises:
            PublishError: the messages were not enqueued.
        """
        if not self.app.conf["task_always_eager"] and is_flat(self, options):
            return send_flat(self, args or (), kwargs or {}, options)
        result: GroupResult = super().apply_async(args, kwargs, **options)
        return result

    async def aapply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        """:meth:`apply_async` from asyncio code (flat groups by the same fast path); see
        ``Container.aapply_async``.

        Raises:
            PublishError: the messages were not enqueued.
        """
        if not self.app.conf.task_always_eager and is_flat(self, options):
            await self.app.broker.aprepare_clock()
            result, plan = plan_flat(self, args or (), kwargs or {}, options)
            await apublish_plan(self.app, plan)
            return result
        found: GroupResult = await super().aapply_async(args, kwargs, **options)
        return found

    def apply(  # type: ignore[override]
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        """Run every member here, one after another."""
        sig, _, now = self._prepared(options)
        assert isinstance(sig, group)
        call_args, call_kwargs = sig._partial(args or (), kwargs)
        results = [member.apply(call_args, call_kwargs, **now) for member in sig.tasks]
        return GroupResult(str(sig.id), results, sig.app)

    # -- the wire form ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The dict form: Celery's ``celery.group`` with its members in ``kwargs['tasks']``."""
        data = super().to_dict()
        data["kwargs"] = {**self.kwargs, "tasks": [t.to_dict() for t in self.tasks]}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celeriac | None = None) -> group:
        """Rebuild a group written by :meth:`to_dict`."""
        kwargs = dict(data.get("kwargs") or {})
        new = cls(kwargs.pop("tasks", []), app=app, **data.get("options", {}))
        new.args, new.kwargs = tuple(data.get("args") or ()), kwargs
        new.immutable = bool(data.get("immutable", False))
        return new


class chord(Container):
    """A group (the header) whose list of results, in order, is given to one more task (the
    body): ``chord(header, body)()`` or ``chord(header)(body)``; the result is the body's."""

    subtask_type = "chord"

    def __init__(
        self,
        header: Tasks,
        body: Signature | dict[str, Any] | None = None,
        *,
        app: Celeriac | None = None,
        **options: Any,
    ) -> None:
        if isinstance(header, dict):
            header = maybe_signature(header, app)
        self.header = header if isinstance(header, group) else group(header, app=app)
        self.body = None if body is None else maybe_signature(body, app)
        first_app = self.header._app or (self.body._app if self.body is not None else None)
        super().__init__("celery.chord", options=options, app=app or first_app)

    @property
    def tasks(self) -> list[Signature]:
        """The header's tasks."""
        return self.header.tasks

    def _children(self) -> list[Signature]:
        return [self.header] if self.body is None else [self.header, self.body]

    def _set_children(self, children: list[Signature]) -> None:
        header = children[0]
        assert isinstance(header, group)
        self.header = header
        self.body = children[1] if len(children) > 1 else None

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.body!r})"

    def __call__(self, body: Signature | None = None, **options: Any) -> Any:
        """Apply the chord, with ``body`` as its body when given (Celery's
        ``chord(header)(body)``)."""
        if body is None:
            return self.apply_async(**options)
        sig = self.clone()
        assert isinstance(sig, chord)
        sig.body = body
        return sig.apply_async(**options)

    def __or__(self, other: object) -> Signature:
        if isinstance(other, Signature) and not (
            isinstance(other, group) or other.subtask_type == "chain"
        ):
            new = self.clone()
            assert isinstance(new, chord)
            new.body = other if new.body is None else new.body._chained(other)
            return new
        return super().__or__(other)

    def link(self, callback: Signature | dict[str, Any]) -> Signature | dict[str, Any]:
        """Apply ``callback`` with the body's result."""
        return self._body().link(callback)

    def link_error(self, errback: Signature | dict[str, Any]) -> Signature | dict[str, Any]:
        """Apply ``errback`` when the body fails, or when the chord fails before it runs."""
        return self._body().link_error(errback)

    def _body(self) -> Signature:
        if self.body is None:
            raise ValueError("this chord has no body: give one, chord(header)(body)")
        return self.body

    # -- the canvas protocol -------------------------------------------------------------------
    def freeze(self, _id: str | None = None, *, parent: Result | None = None) -> Result:
        """Give the header and the body their ids; returns the body's result, whose
        ``parent`` is the header's ``GroupResult``.

        Raises:
            ValueError: the chord has no body.
        """
        body = self._body()
        self.header._inherit(self.options)
        body._inherit(self.options)
        header_result = self.header.freeze(parent=parent)
        return body.freeze(_id, parent=header_result)

    def _leaves(self) -> list[Signature]:
        return self.header._leaves() + self._body()._leaves()

    def _head_ids(self) -> list[str]:
        return self.header._head_ids()

    def _terminal_id(self) -> str:
        return self._body()._terminal_id()

    def _plan(
        self, ctx: Context, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Plan:
        args, kwargs = self._partial(args, kwargs)
        header_args, header_kwargs = self.header._partial(args, kwargs)
        return plan_fan_in(
            ctx, str(self.header.id), self.header.tasks, self._body(), header_args, header_kwargs
        )

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run the header here, then the body with its results; a failed member fails the
        chord (``ChordError``) and runs the body's errbacks."""
        sig, _, now = self._prepared(options)
        assert isinstance(sig, chord)
        body = sig._body()
        call_args, call_kwargs = sig._partial(args or (), kwargs)
        header = sig.header.apply(call_args, call_kwargs, **now)
        failed = next((r for r in _leaf_results(header) if r.state != states.SUCCESS), None)
        if failed is not None:
            error = ChordError(f"Dependency {failed.id} raised {failed.result!r}")
            result = failed_result(sig.app, body, error)
        else:
            result = body.apply((header.get(),))
        result.parent = header
        return result

    # -- the wire form ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The dict form: Celery's ``celery.chord`` with ``kwargs['header']`` and
        ``kwargs['body']``."""
        data = super().to_dict()
        body = None if self.body is None else self.body.to_dict()
        data["kwargs"] = {**self.kwargs, "header": self.header.to_dict(), "body": body}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celeriac | None = None) -> chord:
        """Rebuild a chord written by :meth:`to_dict`."""
        kwargs = dict(data.get("kwargs") or {})
        header, body = kwargs.pop("header"), kwargs.pop("body", None)
        new = cls(header, body, app=app, **data.get("options", {}))
        new.args, new.kwargs = tuple(data.get("args") or ()), kwargs
        new.immutable = bool(data.get("immutable", False))
        return new


def _leaf_results(result: Any) -> list[Any]:
    if isinstance(result, GroupResult):
        return [leaf for r in result.results for leaf in _leaf_results(r)]
    return [result]


def plan_fan_in(
    ctx: Context,
    chord_id: str,
    members: Sequence[Signature],
    body: Signature | None,
    args: Sequence[Any],
    kwargs: dict[str, Any],
) -> Plan:
    """The plan of a chord (or, without ``body``, of a group that reports as one): its document,
    then its members, each carrying ``{"chord": {"id", "size"}}`` to its last task.

    Raises:
        ValueError: an empty group that would have to report as one.
    """
    if not members:
        if body is None:
            raise ValueError("an empty group cannot end a chord member or a DAG node")
        return body._plan(ctx, ([],), {})
    document = {
        "members": [member._terminal_id() for member in members],
        "size": len(members),
        "body": None if body is None else body.to_dict(),
        "result_id": chord_id,
        "carry": ctx.carry,
    }
    plan = Plan(documents=[(chord_key(chord_id), document)])
    member_ctx = ctx.but(carry={"chord": {"id": chord_id, "size": len(members)}}, group_id=chord_id)
    for member in members:
        plan.extend(member._plan(member_ctx, args, kwargs))
    return plan
