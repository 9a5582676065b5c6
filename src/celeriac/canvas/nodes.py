"""Releasing DAG nodes: what the worker does when a node's task ends, shared with the client
(which releases the first nodes of a run and those it retries). See ``canvas.dag``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.canvas.marks import log, mark, try_send
from celeriac.canvas.plan import Context, dag_key, dag_parents_key, dag_publish_key, expiry
from celeriac.canvas.signature import maybe_signature
from celeriac.exceptions import ChordError
from celeriac.result import decode_record
from celeriac.serialization import exception_info, exception_to_dict, json_dumps

if TYPE_CHECKING:
    from celeriac.app import Celeriac

UPSTREAM_FAILED = "UPSTREAM_FAILED"  # a parent failed, so the node did not run


def node_finished(app: Celeriac, tag: dict[str, Any]) -> None:
    """A node's task ended (successfully or not): count it as a finished parent of each child,
    and release the children whose parents have all finished.

    Raises:
        BrokerError, BackendError: the store cannot be reached.
    """
    run_id = str(tag["run"])
    document = app.backend.get_document(dag_key(run_id))
    if document is None:
        log.error("DAG run %s: its record expired before the run finished", run_id)
        return
    _tell_children(app, document, [(str(tag["node"]), int(tag["attempt"]))])


def start(app: Celeriac, document: dict[str, Any], names: Sequence[str]) -> None:
    """Release nodes whose parents have all finished (a run's first nodes, or the nodes a retry
    starts again); those that do not run end at once, and their children are told.

    Raises:
        BrokerError, BackendError: the store cannot be reached.
    """
    nodes = document["nodes"]
    ended = [(n, len(nodes[n]["task_ids"])) for n in names if release(app, document, n)]
    _tell_children(app, document, ended)


def _tell_children(app: Celeriac, document: dict[str, Any], ended: list[tuple[str, int]]) -> None:
    run_id, pending = str(document["id"]), list(ended)
    while pending:  # a loop, not recursion: nodes that do not run end their children too
        name, attempt = pending.pop()
        node = document["nodes"].get(name)
        if node is None or attempt != len(node["task_ids"]):
            continue  # an attempt that a retry replaced
        for child in node["children"]:
            entry = document["nodes"][child]
            child_attempt = len(entry["task_ids"])
            key = dag_parents_key(run_id, child, child_attempt)
            size = app.backend.add_to_set(key, name, expires=expiry(app))
            if size >= len(entry["parents"]) and release(app, document, child):
                pending.append((child, child_attempt))


def _parents(
    app: Celeriac, document: dict[str, Any], name: str
) -> list[tuple[str, ResultRecord | None]]:
    nodes = document["nodes"]
    ids = [nodes[p]["task_ids"][-1] for p in nodes[name]["parents"]]
    records = app.backend.get_many(ids)
    return [(p, records.get(i)) for p, i in zip(nodes[name]["parents"], ids, strict=True)]


def _arguments(values: dict[str, Any]) -> tuple[Any, ...]:
    if not values:
        return ()
    if len(values) == 1:
        return (next(iter(values.values())),)
    return (values,)


def _skip(app: Celeriac, document: dict[str, Any], name: str, failed: str) -> None:
    error = ChordError(
        f"node {name!r} of DAG run {document['id']} did not run: its parent {failed!r} failed"
    )
    sig = maybe_signature(document["nodes"][name]["frozen"], app)
    mark(app, sig._leaves(), states.FAILURE, json_dumps(exception_to_dict(error)), dag_skipped=True)


def release(app: Celeriac, document: dict[str, Any], name: str) -> bool:
    """Send the current attempt of node ``name``, whose parents have all finished, with their
    results; or, when a parent failed and the node does not run on failure, record that it did
    not run. True when it will not run (skipped, or it could not be sent: its task is then
    recorded as failed): its children must then be told.

    Raises:
        BrokerError, BackendError: the store cannot be reached.
    """
    run_id, node = str(document["id"]), document["nodes"][name]
    parents = _parents(app, document, name)
    failed = [p for p, r in parents if r is None or r.state != states.SUCCESS]
    if failed and not node["run_on_failure"]:
        _skip(app, document, name, failed[0])
        return True
    values: dict[str, Any] = {}
    for parent, record in parents:
        if record is None:
            values[parent] = exception_to_dict(ChordError(f"the result of {parent!r} is missing"))
        elif record.state == states.SUCCESS:
            values[parent] = decode_record(app, record)
        else:
            values[parent] = exception_info(record.payload)
    attempt = len(node["task_ids"])
    sig = maybe_signature(node["frozen"], app)
    extra = {}
    if failed and not sig.immutable:  # the child rebuilds these values into exceptions
        extra = {"dag_failed": {"named": len(parents) > 1, "parents": failed}}
    carry = {"dag": {"run": run_id, "node": name, "attempt": attempt}}
    parent_id = document["nodes"][parents[-1][0]]["task_ids"][-1] if parents else None
    ctx = Context(app, carry=carry, extra=extra, parent_id=parent_id)
    once = dag_publish_key(run_id, name, attempt)
    return try_send(app, sig, ctx, _arguments(values), once=once) is not None


def run_eagerly(app: Celeriac, document: dict[str, Any], names: Sequence[str]) -> None:
    """Run nodes here in the order given (an order of the DAG), storing each result."""
    for name in names:
        node = document["nodes"][name]
        parents = _parents(app, document, name)
        failed = [p for p, r in parents if r is None or r.state != states.SUCCESS]
        if failed and not node["run_on_failure"]:
            _skip(app, document, name, failed[0])
            continue
        values = {p: None if r is None else decode_record(app, r) for p, r in parents}
        sig = maybe_signature(node["frozen"], app)
        result = sig.apply(_arguments(values))
        _store_eager(app, sig._terminal_id(), result)


def _store_eager(app: Celeriac, task_id: str, result: Any) -> None:
    record: ResultRecord | None = getattr(result, "_cached", None)
    if record is None:  # a group: its list of results, or its first failure
        failure = next((r for r in result.results if not r.successful()), None)
        record = (
            ResultRecord(
                task_id,
                states.SUCCESS,
                app.serializer.dumps(result.get()),
                app.serializer.content_type,
            )
            if failure is None
            else failure._cached
        )
    app.backend.store(replace(record, task_id=task_id, date_done=time.time()), expires=expiry(app))
