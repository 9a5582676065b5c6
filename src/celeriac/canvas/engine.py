"""Follow-ups: what happens after a task of a workflow reaches a final state.

The worker's main process calls :func:`follow_up` for each recorded outcome whose message has a
``workflow``, inside the broker batch that stores the outcome and before the message is acked:
a crash in between runs the task again (at least once), never loses the follow-up. Everything
here is idempotent or guarded, so that running it twice changes nothing that matters:

* the next step of a chain, links and errbacks are published (a second run may publish them
  again, with the same task ids; their results are written once);
* a chord member adds its id to a set (idempotent) and the body is published with
  ``publish_once``; a DAG node likewise (see ``canvas.dag``);
* states written for tasks that will never run (the rest of a failed chain, a chord body) are
  final states, and a backend keeps the first final state of a task.

Errors that would happen again on every try (a follow-up that cannot be built or is too big)
are recorded as the follow-up's failure instead of being raised (``canvas.marks``), so that
they end the workflow rather than block the worker; errors of the broker or backend are raised,
and the batch is tried again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.canvas.callbacks import unique
from celeriac.canvas.calls import errback_marker
from celeriac.canvas.chain import steps_from
from celeriac.canvas.marks import TRANSIENT, mark, try_send
from celeriac.canvas.nodes import node_finished
from celeriac.canvas.plan import (
    CARRIED,
    Context,
    chord_body_key,
    chord_done_key,
    chord_key,
    expiry,
)
from celeriac.canvas.signature import Signature, as_list, maybe_signature
from celeriac.exceptions import ChordError
from celeriac.message import Message
from celeriac.result import decode_record
from celeriac.serialization import exception_info, exception_to_dict, json_dumps

if TYPE_CHECKING:
    from celeriac.app import Celeriac

log = logging.getLogger("celeriac.canvas")
FOLLOWED = ("link", "link_error", "chain", *CARRIED)  # workflow entries that have follow-ups
__all__ = ["FOLLOWED", "TRANSIENT", "caused_by", "chord_failed", "ended", "follow_up", "send"]


def caused_by(workflow: dict[str, Any], state: str) -> list[str]:
    """Ids of the tasks that the follow-ups of a task in ``state`` send first."""
    if state == states.SUCCESS:
        entries = [*as_list(workflow.get("link"))]
        if workflow.get("chain"):
            entries.append(workflow["chain"][0])
    elif state == states.FAILURE:
        entries = as_list(workflow.get("link_error"))
    else:
        return []
    return [i for entry in entries for i in maybe_signature(entry)._head_ids()]


def follow_up(app: Celeriac, message: Message, record: ResultRecord) -> None:
    """Do what comes after ``message``'s task ended as ``record`` (its stored, final state);
    see the module docstring.

    Raises:
        BrokerError, BackendError: the store cannot be reached (try again later).
    """
    if not any(key in message.workflow for key in FOLLOWED):
        return  # only markers for the call itself (an errback, a map)
    if record.state == states.SUCCESS:
        _succeeded(app, message, record)
    elif record.state in (states.FAILURE, states.REVOKED):
        _failed(app, message, record)


def carried(workflow: dict[str, Any]) -> dict[str, Any]:
    """The workflow entries that travel on to the next step of a chain."""
    return {key: workflow[key] for key in CARRIED if key in workflow}


def _context(app: Celeriac, message: Message, **fields: Any) -> Context:
    return Context(app, parent_id=message.id, root_id=message.root_id or message.id, **fields)


def _succeeded(app: Celeriac, message: Message, record: ResultRecord) -> None:
    workflow = message.workflow
    value = app.serializer.loads(record.content_type, record.payload)
    for entry in as_list(workflow.get("link")):
        send(app, maybe_signature(entry, app), _context(app, message), (value,))
    carry = carried(workflow)
    if workflow.get("chain"):
        step = steps_from(workflow["chain"], app)
        send(app, step, _context(app, message, carry=carry), (value,))
        return
    ended(app, carry, message.id, ok=True, reason="", message=message)


def _failed(app: Celeriac, message: Message, record: ResultRecord) -> None:
    workflow = message.workflow
    info = exception_info(record.payload)
    if record.state == states.FAILURE:
        marker = errback_marker(message, task_id=message.id, task=message.task, exc_info=info)
        ctx = _context(app, message, extra={"errback": marker})
        for entry in as_list(workflow.get("link_error")):
            send(app, maybe_signature(entry, app), ctx, (message.id,))
    terminal = message.id
    if workflow.get("chain"):
        # The steps that will never run end as this one did, so that nobody waits on them.
        rest = steps_from(workflow["chain"], app)
        rest.freeze()
        mark(app, rest._leaves(), record.state, record.payload)
        terminal = rest._terminal_id()
    reason = (
        f"{info.get('exc_type', 'Exception')}: {' '.join(map(str, info.get('exc_message') or []))}"
    )
    ended(app, carried(workflow), terminal, ok=False, reason=reason, message=message)


def ended(
    app: Celeriac,
    carry: dict[str, Any],
    terminal_id: str,
    *,
    ok: bool,
    reason: str,
    message: Message | None = None,
) -> None:
    """Report that the task ending a chord member or a DAG node (``carry`` says which)
    finished, with success or not.

    Raises:
        BrokerError, BackendError: the store cannot be reached.
    """
    if "chord" in carry:
        chord_id = str(carry["chord"]["id"])
        if ok:
            _chord_member_done(app, chord_id, int(carry["chord"]["size"]), terminal_id, message)
        else:
            chord_failed(app, chord_id, terminal_id, reason)
    if "dag" in carry:
        node_finished(app, carry["dag"])


def send(
    app: Celeriac,
    sig: Signature,
    ctx: Context,
    args: Sequence[Any],
    *,
    once: str | None = None,
) -> bool:
    """Apply ``sig`` with ``args`` (enqueued once under the key ``once`` when given); True if
    it was sent. When it cannot be built, its tasks are recorded as failed with the reason
    (``marks.try_send``), and what it ends is told.

    Raises:
        BrokerError, BackendError: the store cannot be reached.
    """
    reason = try_send(app, sig, ctx, args, once=once)
    if reason is None:
        return True
    try:
        terminal = sig._terminal_id()
    except Exception:  # not even its ids can be known: nothing to report
        return False
    ended(app, ctx.carry, terminal, ok=False, reason=reason)
    return False


# -- chords --------------------------------------------------------------------------------------
def _chord_member_done(
    app: Celeriac, chord_id: str, size: int, member_id: str, message: Message | None
) -> None:
    backend = app.backend
    if backend.add_to_set(chord_done_key(chord_id), member_id, expires=expiry(app)) < size:
        return
    document = backend.get_document(chord_key(chord_id))
    if document is None:
        log.error("chord %s: its record expired before its header finished", chord_id)
        return
    members = [str(m) for m in document["members"]]
    records = backend.get_many(members)
    for member in members:
        record = records.get(member)
        if record is None or record.state != states.SUCCESS:
            state = "missing" if record is None else record.state
            chord_failed(app, chord_id, member, f"its result is {state}")
            return
    values = [decode_record(app, records[m]) for m in members]
    carry = document.get("carry") or {}
    if document.get("body") is None:  # a group that reports as one: its result is the list
        result_id = str(document["result_id"])
        record = ResultRecord(
            result_id,
            states.SUCCESS,
            app.serializer.dumps(values),
            app.serializer.content_type,
            time.time(),
            meta={"task": "celery.group"},
        )
        backend.store(record, expires=expiry(app))
        ended(app, carry, result_id, ok=True, reason="", message=message)
        return
    body = maybe_signature(document["body"], app)
    root = None if message is None else message.root_id or message.id
    ctx = Context(app, carry=carry, parent_id=member_id, root_id=root)
    send(app, body, ctx, (values,), once=chord_body_key(chord_id))


def chord_failed(app: Celeriac, chord_id: str, member_id: str, reason: str) -> None:
    """Fail the chord because ``member_id`` failed: the body (never sent) is recorded as
    FAILURE with ``ChordError``, its errbacks run once, and what the chord ends is told.

    Raises:
        BrokerError, BackendError: the store cannot be reached.
    """
    document = app.backend.get_document(chord_key(chord_id))
    if document is None:
        log.error("chord %s: its record expired before its header finished", chord_id)
        return
    error = ChordError(f"Dependency {member_id} raised {reason}")
    info = exception_to_dict(error)
    payload = json_dumps(info)
    if document.get("body") is None:
        terminal = str(document["result_id"])
        mark(
            app, [Signature("celery.group", options={"task_id": terminal})], states.FAILURE, payload
        )
    else:
        body = maybe_signature(document["body"], app)
        body.freeze()
        terminal = body._terminal_id()
        mark(app, body._leaves(), states.FAILURE, payload)
        marker = errback_marker(None, task_id=terminal, task=body.task, exc_info=info)
        ctx = Context(app, extra={"errback": marker}, parent_id=member_id)
        errbacks = unique(
            [e for leaf in body._leaves() for e in as_list(leaf.options.get("link_error"))]
        )
        for index, entry in enumerate(errbacks):
            once = f"{chord_body_key(chord_id)}:errback:{index}"
            send(app, maybe_signature(entry, app), ctx, (terminal,), once=once)
    ended(app, document.get("carry") or {}, terminal, ok=False, reason=str(error))
