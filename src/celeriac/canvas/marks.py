"""Sending a workflow's next tasks, or recording why they cannot run.

A follow-up that cannot be built (a bad option, arguments that do not serialize, a message too
big) would fail the same way on every try, so it is not raised: its tasks are *marked* FAILURE
with the reason, and the workflow ends there instead of blocking the worker. Errors of the
broker or backend are raised, and the worker tries the whole batch again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.canvas.plan import Context, expiry, publish, publish_once
from celeriac.exceptions import BackendError, BrokerError
from celeriac.serialization import JSON, exception_to_dict, json_dumps

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.canvas.signature import Signature

log = logging.getLogger("celeriac.canvas")
TRANSIENT = (BrokerError, BackendError)


def try_send(
    app: Celeriac,
    sig: Signature,
    ctx: Context,
    args: Sequence[Any],
    *,
    once: str | None = None,
) -> str | None:
    """Apply ``sig`` with ``args`` (enqueued once under the key ``once`` when given); None when
    it was sent, else why not, its tasks then being marked FAILURE with that reason.

    Raises:
        BrokerError, BackendError: the store cannot be reached.
    """
    try:
        sig.freeze()
        plan = sig._plan(ctx, args, {})
        if once is None:
            publish(app, plan)
        else:
            publish_once(app, plan, once)
        return None
    except TRANSIENT:
        raise
    except Exception as exc:
        log.error("could not send %r: %s", sig, exc)
        try:
            leaves = sig._leaves()
        except Exception:  # not even its ids can be known: nothing to record
            return f"{type(exc).__name__}: {exc}"
        mark(app, leaves, states.FAILURE, json_dumps(exception_to_dict(exc)))
        return f"{type(exc).__name__}: {exc}"


def mark(
    app: Celeriac,
    leaves: Sequence[Signature],
    state: str,
    payload: bytes,
    **meta: Any,
) -> None:
    """Record ``state`` (with the exception described by ``payload``) for tasks that will not
    run; a task that already has a final state keeps it.

    Raises:
        BackendError: the backend cannot be reached.
    """
    records = [
        ResultRecord(
            str(leaf.id), state, payload, JSON, time.time(), 0, {"task": leaf.task, **meta}
        )
        for leaf in leaves
        if leaf.id is not None
    ]
    if records:
        app.backend.store_many(records, expires=expiry(app))
