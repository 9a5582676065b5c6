"""``app.asend_task`` (and so ``Task.adelay`` / ``aapply_async``): ``send_task`` from asyncio
code. The message is built as ``send_task`` builds it (the same checks, options, lineage and
``Sender``), then published without blocking the event loop (``canvas.asending.apublish``);
see ``docs/design/asyncio.md``.

``send_task``'s steps are written out again here rather than shared, so that ``delay()``'s path
keeps its few lines untouched (issue 12 times them); ``tests/asyncio_client`` checks that both
build the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac.canvas.asending import apublish
from celeriac.canvas.signature import links_workflow
from celeriac.eager import apply_eagerly
from celeriac.request import current_request, note_children, sender_lineage
from celeriac.result import AsyncResult
from celeriac.sending import check_send_options

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.task import Task


async def asend_task(
    app: Celeriac,
    name: str,
    args: Sequence[Any] | None,
    kwargs: dict[str, Any] | None,
    task: Task[Any, Any] | None,
    options: dict[str, Any],
) -> AsyncResult[Any]:
    """Send a call of the task ``name`` from a coroutine; see ``Celeriac.asend_task``.

    Raises:
        ConfigurationError: an unknown option, or a bad priority or time.
        TypeError: the arguments do not fit a task registered here, or do not serialize.
        MessageTooLarge: the message is over ``message_max_bytes``.
        PublishError: the message was not enqueued.
    """
    check_send_options(options)
    args, kwargs = tuple(args or ()), dict(kwargs or {})
    task = task or app.tasks.get(name)
    if task is not None:
        task.check_arguments(args, kwargs)
        if app.conf.task_always_eager:
            return apply_eagerly(app, task, list(args), kwargs, **options)
    if options.get("link") or options.get("link_error"):
        options["workflow"] = links_workflow(options, app)
    sender = app.sender
    await sender.broker.aprepare_clock()
    message = sender.message(
        name,
        args,
        kwargs,
        options,
        task_defaults=task.message_defaults() if task is not None else {},
        lineage=sender_lineage(current_request()),
    )
    await apublish(sender, [message], options)
    if options.get("add_to_parent", True):
        note_children([message.id])
    return AsyncResult(message.id, app)
