"""Links and errbacks of calls run here (``apply()``, ``task_always_eager``), as Celery's eager
mode runs them: callbacks and errbacks are applied with ``apply_async``, so they run here too
when ``task_always_eager`` is set and are sent to a worker otherwise."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.canvas.calls import errback_marker
from celeriac.canvas.plan import Context, publish
from celeriac.canvas.signature import Signature, as_list, maybe_signature
from celeriac.result import EagerResult, decode_record
from celeriac.serialization import exception_to_dict, json_dumps

if TYPE_CHECKING:
    from celeriac.app import Celeriac


def run_links(
    app: Celeriac,
    record: ResultRecord,
    options: dict[str, Any],
    arguments: tuple[list[Any], dict[str, Any]] = ([], {}),
) -> None:
    """Apply the ``link`` callbacks (after a success) or ``link_error`` errbacks (after a
    failure) given in ``options`` for the call (with ``arguments``) that ``record`` describes.

    Raises:
        PublishError: a callback was sent and not enqueued.
    """
    if record.state == states.SUCCESS:
        value = decode_record(app, record)
        for callback in as_list(options.get("link")):
            maybe_signature(callback, app).apply_async((value,), parent_id=record.task_id)
    elif record.state == states.FAILURE:
        info = json.loads(record.payload or b"{}")
        name = str(record.meta.get("task") or "")
        try:
            body = (app.serializer.dumps(list(arguments)), app.serializer.content_type)
        except (TypeError, ValueError):
            body = None  # the errback's request then has no arguments
        marker = errback_marker(None, task_id=record.task_id, task=name, exc_info=info, body=body)
        _send_errbacks(app, as_list(options.get("link_error")), record.task_id, marker)


def _send_errbacks(
    app: Celeriac, errbacks: list[Any], task_id: str, marker: dict[str, Any]
) -> None:
    # Not through send_task: it would refuse a (request, exc, traceback) errback's arguments,
    # which are only made where the errback runs.
    for errback in errbacks:
        sig = maybe_signature(errback, app).clone()
        if app.conf.task_always_eager:
            workflow = {**(sig.options.get("workflow") or {}), "errback": marker}
            sig.apply((task_id,), workflow=workflow)
        else:
            sig.freeze()
            ctx = Context(app, extra={"errback": marker}, parent_id=task_id)
            publish(app, sig._plan(ctx, (task_id,), {}))


def failed_result(app: Celeriac, body: Signature, error: BaseException) -> EagerResult[Any]:
    """The result of a chord body that cannot run because of ``error``; its errbacks are run.

    Raises:
        PublishError: an errback was sent and not enqueued.
    """
    terminal = body._terminal_id()
    info = exception_to_dict(error)
    record = ResultRecord(
        terminal,
        states.FAILURE,
        json_dumps(info),
        "application/json",
        time.time(),
        meta={"task": body.task},
    )
    errbacks = [e for leaf in body._leaves() for e in as_list(leaf.options.get("link_error"))]
    marker = errback_marker(None, task_id=terminal, task=body.task, exc_info=info)
    _send_errbacks(app, unique(errbacks), terminal, marker)
    return EagerResult(terminal, app, record)


def unique(entries: list[Any]) -> list[Any]:
    """The entries without repeats (equal dicts count once), in order."""
    seen: set[str] = set()
    unique = []
    for entry in entries:
        key = json.dumps(entry, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    return unique
