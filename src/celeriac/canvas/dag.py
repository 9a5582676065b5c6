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
that succeeded, and releases those whose parents all did; the run resumes from there.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.canvas.nodes import UPSTREAM_FAILED, run_eagerly, start
from celeriac.canvas.plan import dag_key, dag_parents_key, expiry
from celeriac.canvas.signature import Signature, maybe_signature
from celeriac.current import current_app
from celeriac.exceptions import CeleriacError, TimeoutError
from celeriac.result import decode_record

if TYPE_CHECKING:
    from celeriac.app import Celeriac

WAITING = "WAITING"  # some parent has not finished
RUNNING = "RUNNING"  # the run's state while any node has not finished
FAILED_STATES = frozenset({states.FAILURE, states.REVOKED, UPSTREAM_FAILED})


class DagRunNotFound(CeleriacError, LookupError):
    """No DAG run has this id (it never existed, or its record expired)."""


@dataclass(frozen=True)
class DagNode:
    """A node of a :class:`Dag`, to name in another node's ``after``."""

    name: str


@dataclass(frozen=True)
class NodeStatus:
    """One node of a run: its state, its current attempt and that attempt's task id."""

    name: str
    state: str
    attempt: int
    task_id: str
    parents: tuple[str, ...]


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
        """Store the run and send the nodes that have no parents; eagerly when
        ``task_always_eager`` is set.

        Raises:
            BackendError: the run could not be stored.
            PublishError: a node was not enqueued.
        """
        app = self.app
        document = self._document(run_id or str(uuid.uuid4()))
        app.backend.put_document(dag_key(document["id"]), document, expires=expiry(app))
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
        """Run every node here, in dependency order; the run is stored as a sent one is."""
        app = self.app
        document = self._document(run_id or str(uuid.uuid4()))
        app.backend.put_document(dag_key(document["id"]), document, expires=expiry(app))
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
        nodes = document["nodes"]
        ids = {name: nodes[name]["task_ids"][-1] for name in document["order"]}
        records = self.app.backend.get_many(list(ids.values()))
        found: list[NodeStatus] = []
        for name in document["order"]:
            record, parents = records.get(ids[name]), nodes[name]["parents"]
            if record is None:
                done = all((r := records.get(ids[p])) is not None and r.ready for p in parents)
                state = states.PENDING if done else WAITING
            elif record.state == states.FAILURE and record.meta.get("dag_skipped"):
                state = UPSTREAM_FAILED
            else:
                state = record.state
            attempt = len(nodes[name]["task_ids"])
            found.append(NodeStatus(name, state, attempt, ids[name], tuple(parents)))
        return found

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
        found = self.nodes().values()
        if any(s not in states.READY_STATES and s != UPSTREAM_FAILED for s in found):
            return RUNNING
        return states.SUCCESS if all(s == states.SUCCESS for s in found) else states.FAILURE

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

    def retry_failed(self) -> list[str]:
        """Run the failed nodes again (and those that did not run because of them), under a
        new attempt, without running again what succeeded; returns their names.

        Raises:
            DagRunNotFound: there is no run with this id.
            BackendError: the run could not be updated.
            PublishError: a node was not enqueued.
        """
        app = self.app
        document = self.document()
        found = {node.name: node.state for node in self.status()}
        retried = [name for name in document["order"] if found[name] in FAILED_STATES]
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
        ready = []
        for name in retried:
            node = document["nodes"][name]
            key = dag_parents_key(self.id, name, len(node["task_ids"]))
            succeeded = [p for p in node["parents"] if found[p] == states.SUCCESS]
            for parent in succeeded:
                app.backend.add_to_set(key, parent, expires=expiry(app))
            if len(succeeded) == len(node["parents"]):
                ready.append(name)
        start(app, document, ready)
        return retried
