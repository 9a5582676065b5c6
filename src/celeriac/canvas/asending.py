"""Sending from asyncio code: built messages, and a workflow's plan, published without blocking
the event loop (``adelay``, ``aapply_async``, ``app.asend_task``).

Only the publish is asynchronous. The messages are built by the same ``Sender`` as
``delay()``'s (the same template, routes, hooks, signing and size check), so the bytes on the
wire are the same; building them reads no network once the broker's clock is ready
(``Broker.aprepare_clock``). The broker's ``apublish_many`` / ``apublish_retrying`` and the
backend's ``aput_document`` do the I/O: on Redis, redis-py's asyncio client; elsewhere a thread
(see ``docs/design/asyncio.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.canvas.plan import Plan, expiry
from celeriac.request import note_children

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.message import Message
    from celeriac.sending import Sender


async def apublish(
    sender: Sender, messages: Sequence[Message], options: Mapping[str, Any] | None = None
) -> None:
    """``Sender.publish`` from a coroutine: enqueue built messages in one round trip, then
    run ``after_publish`` on each. ``options`` are the send options (``retry``,
    ``retry_policy``).

    Raises:
        ConfigurationError: a bad ``retry`` or ``retry_policy``.
        PublishError: the messages were not enqueued.
    """
    retry = sender.retry_for(options or {})
    if retry is not None:
        timeout = sender.defaults.publish_timeout
        await sender.broker.apublish_retrying(messages, retry, timeout=timeout)
    else:
        await sender.broker.apublish_many(messages)
    for message in messages:
        sender.middleware.after_publish(message)


async def apublish_plan(app: Celeriac, plan: Plan) -> None:
    """``canvas.plan.publish`` from a coroutine: store the plan's documents, then publish its
    messages in one round trip.

    Raises:
        BackendError: a document was not stored.
        PublishError: the messages were not enqueued.
    """
    for key, document in plan.documents:
        await app.backend.aput_document(key, document, expires=expiry(app))
    if plan.messages:
        await apublish(app.sender, plan.messages)
        note_children(m.id for m in plan.messages)
