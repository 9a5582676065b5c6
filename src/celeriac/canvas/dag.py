"""DAG workflows: tasks with arbitrary dependencies, run as soon as their parents are done.

    flow = dag("daily_report")
    users = flow.add(extract.s("users"))
    orders = flow.add(extract.s("orders"))
    joined = flow.add(join.s(), after=[users, orders])   # join({"extract": ..., "extract_2": ...})
    run = flow.apply_async()
    run.get(timeout=60)                                   # {node name: result}

A node's signature receives its parents' results first in its arguments, by name: nothing for
a node without parents (or an immutable signature), the plain value with one parent (as in a
chain), and a dict ``{parent name: result}`` with several. A node marked ``run_on_failure``
runs even when a parent failed; that parent's value is then its exception instance. Any other
node whose parent failed does not run: it ends as FAILURE with ``ChordError``, shown as
``UPSTREAM_FAILED``, and so do the nodes below it. The other branches run to the end.

A run is a document in the result backend (``dag:<run id>``): every node's signature, edges,
flags, and its task id for each attempt. Only the client writes it (when it applies the run and
when it retries). A node's state is its task's result. When a node's task ends (``workflow``
carries ``{"dag": {"run", "node", "attempt"}}`` to it), the worker adds the node's name to each
child's set of finished parents (``add_to_set``, for the child's current attempt); the one that
completes a set releases the child with ``publish_once(key=dag:<run>:<node>:<attempt>)``, so a
node is enqueued once per attempt however many times its parents' follow-ups run.
``retry_failed()`` gives the failed nodes a new attempt and a new task id, counts their parents
that finished and are not retried, and releases those whose parents all did; the run resumes
from there.
``retry_failed(nodes=[...])`` does the same for the named nodes, and for the nodes below them
that did not run because of them only.

Every run is also recorded, when it is applied, in the index of recent runs
(``canvas.dag_index``), which ``recent_runs(app)`` reads: a run can be found without its id.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.canvas import dag_index
from celeriac.canvas.dag_status import (
    FAILED_STATES,
    FINISHED_STATES,
    RUNNING,
    WAITING,
    NodeStatus,
    current_task_ids,
    node_statuses,
    run_state,
)
from celeriac.canvas.nodes import UPSTREAM_FAILED, run_eagerly, start
from celeriac.canvas.plan import dag_key, dag_parents_key, expiry
from celeriac.canvas.signature import Signature, maybe_signature
from celeriac.current import current_app
from celeriac.exceptions import CeleriacError, TimeoutError
from celeriac.result import decode_record

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.backends.base import ResultRecord

__all__ = [
    "FAILED_STATES",
    "RUNNING",
    "UPSTREAM_FAILED",
    "WAITING",
    "Dag",
    "DagNode",
    "DagNodeError",
    "DagNodeNotFailed",
    "DagRun",
    "DagRunNotFound",
    "NodeStatus",
    "UnknownDagNode",
    "dag",
]


class DagRunNotFound(CeleriacError, LookupError):
    """No DAG run has this id (it never existed, or its record expired)."""


class DagNodeError(CeleriacError, ValueError):
    """Nodes named in a call on a DAG run that the call cannot take; ``nodes`` names them."""

    def __init__(self, message: str, nodes: Sequence[str]) -> None:
        super().__init__(message)
        self.nodes = tuple(nodes)


class UnknownDagNode(DagNodeError):
    """The run has no node of this name."""


class DagNodeNotFailed(DagNodeError):
    """A node asked to be retried did not fail itself: it succeeded, has not finished, or did
    not run because a parent failed (retry that parent instead)."""


@dataclass(frozen=True)
class DagNode:
    """A node of a :class:`Dag`, to name in another node's ``after``."""

    name: str


class Dag:
    """A workflow of nodes and dependencies; build it with :meth:`add`, then apply it."""

    def __init__(self, name: str, *, app: Celeriac | None = None) -> None:
        self.name = name
        self._app = app
        self._nodes: dict[str, dict[str, Any]] = {}

    @property
    def app(self) -> Celeriac:
        """The app that runs the DAG (that of its first node, else the current one)."""
        if self._app is None:
            first = next(iter(self._nodes.values()), None)
            self._app = first["app"] if first and first["app"] else current_app()
        return self._app

    @property
    def nodes(self) -> list[str]:
        """Node names, in the order they were added."""
        return list(self._nodes)

    def add(
        self,
        sig: Signature,
        after: Sequence[DagNode | str] = (),
        name: str | None = None,
        run_on_failure: bool = False,
    ) -> DagNode:
        """Add a node that runs ``sig`` once every node in ``after`` has finished.

        ``name`` defaults to the task's short name (``extract``, then ``extract_2``...).

        Raises:
            ValueError: the name is taken, or a node in ``after`` is not in this DAG.
            TypeError: ``sig`` is not a signature.
        """
        if not isinstance(sig, Signature):
            raise TypeError(f"a DAG node runs a signature, not {type(sig).__name__}")
        parents = [p.name if isinstance(p, DagNode) else str(p) for p in after]
        for parent in parents:
            if parent not in self._nodes:
                raise ValueError(f"{self.name}: no node named {parent!r} to run after")
        name = name or self._free_name(sig.task.rsplit(".", 1)[-1])
        if name in self._nodes:
            raise ValueError(f"{self.name}: there already is a node named {name!r}")
        self._nodes[name] = {
            "sig": sig.to_dict(),
            "parents": list(dict.fromkeys(parents)),
            "run_on_failure": bool(run_on_failure),
            "app": sig._app,
        }
        return DagNode(name)

    def _free_name(self, base: str) -> str:
        name, number = base, 1
        while name in self._nodes:
            number += 1
            name = f"{base}_{number}"
        return name

    def _document(self, run_id: str) -> dict[str, Any]:
        nodes: dict[str, dict[str, Any]] = {}
        for name, node in self._nodes.items():
            task_id = str(uuid.uuid4())
            nodes[name] = {
                "sig": node["sig"],
                "frozen": _frozen(self.app, node["sig"], task_id),
                "parents": node["parents"],
                "children": [n for n, other in self._nodes.items() if name in other["parents"]],
                "run_on_failure": node["run_on_failure"],
                "task_ids": [task_id],
            }
        order = list(self._nodes)
        return {
            "id": run_id,
            "name": self.name,
            "created": time.time(),
            "order": order,
            "nodes": nodes,
        }

    def apply_async(self, run_id: str | None = None) -> DagRun:
        """Store the run (and record it among the recent runs) and send the nodes that have no
        parents; eagerly when ``task_always_eager`` is set.

        Raises:
            BackendError: the run could not be stored.
            PublishError: a node was not enqueued.
        """
        app = self.app
        document = self._document(run_id or str(uuid.uuid4()))
        app.backend.put_document(dag_key(document["id"]), document, expires=expiry(app))
        dag_index.record(app, document["id"], document["created"])
        if app.conf.task_always_eager:
            run_eagerly(app, document, document["order"])
        else:
            roots = [n for n in document["order"] if not document["nodes"][n]["parents"]]
            start(app, document, roots)
        return DagRun(document["id"], app)

    __call__ = apply_async

    async def aapply_async(self, run_id: str | None = None) -> DagRun:
        """:meth:`apply_async` from asyncio code. A run's start reads and writes several
        backend keys and publishes each root node once (``publish_once``), steps that have no
        asyncio side yet: it runs in a thread of the loop's executor, the loop running on.

        Raises:
            BackendError: the run could not be stored.
            PublishError: a node was not enqueued.
        """
        return await asyncio.to_thread(self.apply_async, run_id)

    def apply(self, run_id: str | None = None) -> DagRun:
        """Run every node here, in dependency order; the run is stored (and recorded among the
        recent runs) as a sent one is.

        Raises:
            BackendError: the run could not be stored.
        """
        app = self.app
        document = self._document(run_id or str(uuid.uuid4()))
        app.backend.put_document(dag_key(document["id"]), document, expires=expiry(app))
        dag_index.record(app, document["id"], document["created"])
        run_eagerly(app, document, document["order"])
        return DagRun(document["id"], app)


def dag(name: str, *, app: Celeriac | None = None) -> Dag:
    """A new, empty DAG called ``name``."""
    return Dag(name, app=app)


def _frozen(app: Celeriac, sig: dict[str, Any], task_id: str) -> dict[str, Any]:
    frozen = maybe_signature(sig, app).clone()
    frozen.freeze(task_id)
    return frozen.to_dict()


class DagRun:
    """A handle on one run of a DAG, from any process: ``DagRun(run_id, app)``."""

    def __init__(self, id: str, app: Celeriac | None = None) -> None:
        self.id = id
        self.app = app or current_app()

    def __repr__(self) -> str:
        return f"<DagRun: {self.id}>"

    def document(self) -> dict[str, Any]:
        """The run's stored record.

        Raises:
            DagRunNotFound: there is no run with this id.
        """
        document = self.app.backend.get_document(dag_key(self.id))
        if document is None:
            raise DagRunNotFound(f"no DAG run {self.id} (it never existed, or it expired)")
        return document

    def status(self) -> list[NodeStatus]:
        """Every node's state, attempt and task id, in the order the nodes were added.

        Raises:
            DagRunNotFound: there is no run with this id.
        """
        document = self.document()
        return node_statuses(document, self._records(document))

    def nodes(self) -> dict[str, str]:
        """``{node name: state}``: a task state, or ``WAITING`` (for its parents) or
        ``UPSTREAM_FAILED`` (a parent failed, so it did not run).

        Raises:
            DagRunNotFound: there is no run with this id.
        """
        return {node.name: node.state for node in self.status()}

    def state(self) -> str:
        """``RUNNING`` until every node has finished, then ``SUCCESS`` or ``FAILURE``.

        Raises:
            DagRunNotFound: there is no run with this id.
        """
        return run_state(self.nodes().values())

    def get(self, timeout: float | None = None, propagate: bool = True) -> dict[str, Any]:
        """Wait for every node and return ``{node name: result}``.

        Raises:
            DagRunNotFound: there is no run with this id.
            TimeoutError: not every node finished within ``timeout`` seconds.
            BaseException: with ``propagate``, the exception of the first failed node (in the
                order they were added, nodes that failed themselves before those that did not
                run because of them).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            document = self.document()
            ids = {n: document["nodes"][n]["task_ids"][-1] for n in document["order"]}
            for name, task_id in ids.items():
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                record = self.app.backend.wait(task_id, remaining)
                if record is None or not record.ready:
                    raise TimeoutError(
                        f"DAG run {self.id}: node {name!r} did not finish within {timeout} seconds"
                    )
            again = self.document()
            if all(again["nodes"][n]["task_ids"][-1] == i for n, i in ids.items()):
                break  # no retry started meanwhile
        records = self.app.backend.get_many(list(ids.values()))
        values = {name: decode_record(self.app, records[i]) for name, i in ids.items()}
        if propagate:
            failed = [n for n, i in ids.items() if records[i].state != states.SUCCESS]
            failed.sort(key=lambda n: bool(records[ids[n]].meta.get("dag_skipped")))
            if failed and isinstance(values[failed[0]], BaseException):
                raise values[failed[0]]
        return values

    def retry_failed(self, nodes: Iterable[str] | None = None) -> list[str]:
        """Run failed nodes again, under a new attempt, and the nodes below them that did not
        run because of them; what succeeded does not run again. Returns the names retried, in
        the order the nodes were added.

        Without ``nodes``, every failed or skipped node is retried. With ``nodes`` (names, or
        one name), only those, which must have failed or been revoked themselves, and each
        ``UPSTREAM_FAILED`` node below them whose failed parents are all being retried: it
        waits for them. A node that did not run because of another failed node, not named,
        stays as it is. An empty ``nodes`` retries nothing.

        Raises:
            DagRunNotFound: there is no run with this id.
            UnknownDagNode: a name in ``nodes`` is no node of this run (nothing is retried).
            DagNodeNotFailed: a node in ``nodes`` did not fail itself (nothing is retried).
            BackendError: the run could not be updated.
            PublishError: a node was not enqueued.
        """
        app, document = self.app, self.document()
        found = {node.name: node.state for node in node_statuses(document, self._records(document))}
        if nodes is None:
            retried = [name for name in document["order"] if found[name] in FAILED_STATES]
        else:
            named = [nodes] if isinstance(nodes, str) else list(dict.fromkeys(nodes))
            retried = _with_skipped_below(
                document, found, _checked(self.id, document, found, named)
            )
        if not retried:
            return []
        for name in retried:
            node = document["nodes"][name]
            task_id = str(uuid.uuid4())
            node["task_ids"].append(task_id)
            node["frozen"] = _frozen(app, node["sig"], task_id)
        app.backend.put_document(dag_key(self.id), document, expires=expiry(app))
        if app.conf.task_always_eager:
            run_eagerly(app, document, retried)
            return retried
        start(app, document, self._count_finished_parents(document, retried))
        return retried

    def _records(self, document: dict[str, Any]) -> dict[str, ResultRecord]:
        """The results of the nodes' current attempts."""
        return self.app.backend.get_many(current_task_ids(document))

    def _count_finished_parents(self, document: dict[str, Any], retried: list[str]) -> list[str]:
        """Add to each retried node's new parents set the parents that have finished and are not
        retried; returns the nodes whose parents all have. Read after the new attempts were
        written: a parent that finished before then told the old attempt, and is counted here;
        one that finishes after tells the new one."""
        app, again = self.app, set(retried)
        found = {node.name: node.state for node in node_statuses(document, self._records(document))}
        ready = []
        for name in retried:
            node = document["nodes"][name]
            key = dag_parents_key(self.id, name, len(node["task_ids"]))
            done = [p for p in node["parents"] if p not in again and found[p] in FINISHED_STATES]
            for parent in done:
                app.backend.add_to_set(key, parent, expires=expiry(app))
            if len(done) == len(node["parents"]):
                ready.append(name)
        return ready


def _checked(
    run_id: str, document: dict[str, Any], found: dict[str, str], named: list[str]
) -> list[str]:
    """``named``, once each name is known to be a node of the run that failed itself.

    Raises:
        UnknownDagNode: a name is no node of the run.
        DagNodeNotFailed: a node did not fail (or was not revoked) itself.
    """
    unknown = [name for name in named if name not in document["nodes"]]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        raise UnknownDagNode(f"DAG run {run_id} has no node named {listed}", unknown)
    refused = [name for name in named if found[name] not in (states.FAILURE, states.REVOKED)]
    if refused:
        listed = ", ".join(f"{name!r} ({found[name]})" for name in refused)
        hint = ""
        if any(found[name] == UPSTREAM_FAILED for name in refused):
            hint = "; a node that did not run because a parent failed runs again with that parent"
        raise DagNodeNotFailed(
            f"DAG run {run_id}: only a failed node can be retried, not {listed}{hint}", refused
        )
    return named


def _with_skipped_below(
    document: dict[str, Any], found: dict[str, str], named: list[str]
) -> list[str]:
    """``named`` and the nodes below them that did not run because of them only, in the order
    the nodes were added (parents come before their children in it)."""
    retried = set(named)
    for name in document["order"]:
        if name in retried or found[name] != UPSTREAM_FAILED:
            continue
        failed = [p for p in document["nodes"][name]["parents"] if found[p] in FAILED_STATES]
        if failed and all(p in retried for p in failed):
            retried.add(name)
    return [name for name in document["order"] if name in retried]
