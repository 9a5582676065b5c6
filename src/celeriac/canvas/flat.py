"""A flat group's fast path: a group of plain signatures (no links, no nested canvas) sent as
``apply_canvas`` sends it, without cloning and freezing each member first.

The members are read, never copied or changed; the result handles, the saved ``GroupResult``
and the messages are those the general path makes (same ids, lineage, options, routes, hooks),
but the members that call one task with the same options share one message template
(``Sender.messages``): what they have in common is routed, checked and encoded once, and all
go to the broker in one ``publish_many``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.canvas.plan import IMMEDIATE, NOT_INHERITED, Context, Plan, publish
from celeriac.canvas.signature import Signature
from celeriac.ids import collector_paused, new_ids
from celeriac.request import current_request, sender_lineage
from celeriac.result import AsyncResult, GroupResult, group_key
from celeriac.sending import Call

if TYPE_CHECKING:
    from celeriac.canvas.group import group
    from celeriac.message import Message

LINKS = ("link", "link_error")
LINEAGE = ("parent_id", "root_id", "group_id")


def is_flat(sig: group, options: Mapping[str, Any]) -> bool:
    """True when applying ``sig`` with ``options`` may take the fast path: every member a plain
    signature without links, and no link on the group or in the options."""
    if not sig.tasks or any(options.get(k) or sig.options.get(k) for k in LINKS):
        return False
    for member in sig.tasks:
        if type(member) is not Signature:
            return False
        given = member.options
        if given and (given.get("link") or given.get("link_error")):
            return False
    return True


def send_flat(
    sig: group, args: Sequence[Any], kwargs: dict[str, Any], options: dict[str, Any]
) -> GroupResult:
    """Send a flat group (``is_flat``) as ``Container.apply_async`` does; returns its result.

    Raises:
        ConfigurationError, TypeError, MessageTooLarge: a message cannot be built.
        BackendError: the group's result was not saved.
        PublishError: the messages were not enqueued.
    """
    with collector_paused(len(sig.tasks)):  # until the messages are gone: see plan_flat
        result, plan = plan_flat(sig, args, kwargs, options)
        publish(sig.app, plan)
        del plan
    return result


def plan_flat(
    sig: group, args: Sequence[Any], kwargs: dict[str, Any], options: dict[str, Any]
) -> tuple[GroupResult, Plan]:
    """What :func:`send_flat` sends, before it is sent: the result and the plan (the saved
    group, the messages); ``aapply_async`` publishes it from a coroutine.

    Raises:
        ConfigurationError, TypeError, MessageTooLarge: a message cannot be built.
    """
    app = sig.app
    options = {k: v for k, v in options.items() if k not in LINKS}
    task_id = options.pop("task_id", None)
    now = {k: options.pop(k) for k in IMMEDIATE if options.get(k) is not None}
    lineage = {k: options.pop(k) for k in LINEAGE if options.get(k) is not None}
    for key in (*LINEAGE, "add_to_parent", "throw"):
        options.pop(key, None)
    group_id = sig.options.get("task_id")  # as group.freeze() names it
    if task_id is not None or group_id is None:
        group_id = task_id or new_ids(1)[0]
    group_id = str(group_id)
    inherited = {k: v for k, v in {**sig.options, **options}.items() if k not in NOT_INHERITED}
    ctx = Context(app, immediate=now, **lineage).but(group_id=group_id)
    call_args, call_kwargs = sig._partial(args, kwargs)
    with collector_paused(len(sig.tasks)):
        ids, runs = _calls(sig.tasks, inherited, call_args, call_kwargs)
        messages = [message for run in runs for message in _run_messages(ctx, *run)]
        results: list[AsyncResult[Any]] = [
            AsyncResult(member_id, member._app)
            for member_id, member in zip(ids, sig.tasks, strict=True)
        ]
        result = GroupResult(group_id, results, app)
        tree = {"id": group_id, "results": [{"id": member_id} for member_id in ids]}
    return result, Plan([(group_key(group_id), {"result": tree})], messages)


def _calls(
    members: Sequence[Signature],
    inherited: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[list[str], list[tuple[str, dict[str, Any], list[Call]]]]:
    """Each member's task id, and its call in runs of members in a row that call one task
    with the same options (``inherited`` under the member's own)."""
    fresh = iter(new_ids(sum(1 for m in members if m.options.get("task_id") is None)))
    ids: list[str] = []
    runs: list[tuple[str, dict[str, Any], list[Call]]] = []
    last: tuple[str, dict[str, Any], list[Call]] | None = None
    for member in members:
        given = member.options
        member_id = given.get("task_id") if given else None
        member_id = next(fresh) if member_id is None else str(member_id)
        ids.append(member_id)
        rest = {k: v for k, v in given.items() if k != "task_id"} if given else given
        member_options = {**inherited, **rest} if rest else inherited
        if member.immutable or not (args or kwargs):  # the call's arguments are only read
            call: Call = (member_id, member.args, member.kwargs)
        else:
            call = (member_id, args + member.args, {**member.kwargs, **kwargs})
        if (
            last is not None
            and last[0] == member.task
            and (last[1] is member_options or last[1] == member_options)
        ):
            last[2].append(call)
        else:
            last = (member.task, member_options, [call])
            runs.append(last)
    return ids, runs


def _run_messages(
    ctx: Context, name: str, options: dict[str, Any], calls: list[Call]
) -> list[Message]:
    """The messages of members in a row that call one task with the same options."""
    task = ctx.app.tasks.get(name)
    return ctx.app.sender.messages(
        name,
        calls,
        ctx.send_options(name, options),
        task_defaults=task.message_defaults() if task is not None else {},
        lineage=sender_lineage(current_request()),
    )
