"""What state a DAG run and its nodes are in, read from the run's document and the results of
its nodes' current attempts. Shared by ``DagRun`` (one run) and the index of recent runs (many
runs, their results read in one call). See ``canvas.dag``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.canvas.nodes import UPSTREAM_FAILED

if TYPE_CHECKING:
    from celeriac.backends.base import ResultRecord

WAITING = "WAITING"  # some parent has not finished
RUNNING = "RUNNING"  # the run's state while any node has not finished
FAILED_STATES = frozenset({states.FAILURE, states.REVOKED, UPSTREAM_FAILED})
FINISHED_STATES = states.READY_STATES | {UPSTREAM_FAILED}


@dataclass(frozen=True)
class NodeStatus:
    """One node of a run: its state, its current attempt and that attempt's task id."""

    name: str
    state: str
    attempt: int
    task_id: str
    parents: tuple[str, ...]


def current_task_ids(document: dict[str, Any]) -> list[str]:
    """The task id of each node's current attempt, in the order the nodes were added."""
    return [document["nodes"][name]["task_ids"][-1] for name in document["order"]]


def node_statuses(document: dict[str, Any], records: dict[str, ResultRecord]) -> list[NodeStatus]:
    """Each node of a run's ``document``, from the ``records`` of its current attempts (more
    records than those may be given): a task state, ``WAITING`` for its parents, or
    ``UPSTREAM_FAILED`` (a parent failed, so it did not run)."""
    nodes = document["nodes"]
    ids = dict(zip(document["order"], current_task_ids(document), strict=True))
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


def run_state(node_states: Iterable[str]) -> str:
    """A run's state from its nodes' states: ``RUNNING`` until every node has finished, then
    ``SUCCESS`` if they all succeeded, else ``FAILURE``."""
    found = list(node_states)
    if any(s not in FINISHED_STATES for s in found):
        return RUNNING
    return states.SUCCESS if all(s == states.SUCCESS for s in found) else states.FAILURE
