"""The index of recent DAG runs, so that a run can be found without knowing its id.

Each run is recorded when it is applied, as the member ``"<created>:<run id>"`` (the time
first, so that members sort by it) of a set in the result backend, ``dag-runs:<generation>``.
A generation holds :data:`RUNS_KEPT` runs: the client whose add fills it moves the pointer
document ``dag-runs`` on to the next one. Readers read the current generation and the one
before it, which hold at least the newest :data:`RUNS_KEPT` runs (once there were that many)
and at most about twice that, so reading the index costs the same after a million runs as
after two hundred. Older generations expire with the runs they list (``result_expires``).

It is built only from ``add_to_set``, ``set_members`` and documents, which every backend has,
so no store needed a new method. Races are harmless: two clients that fill one generation
both move the pointer to the same next one; a client that read the pointer just before it
moved adds its run to the generation before, which readers still read. Only a client that
stalled while a whole generation (200 runs) was applied would add to one that readers skip.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from celeriac.canvas.dag_status import current_task_ids, node_statuses, run_state
from celeriac.canvas.plan import dag_key, dag_runs_key, dag_runs_pointer_key, expiry

if TYPE_CHECKING:
    from celeriac.app import Celeriac

RUNS_KEPT = 200  # the index lists at most this many runs, the newest


@dataclass(frozen=True)
class DagRunSummary:
    """One recent run: its id, its DAG's name, when it was applied, its state, and how many of
    its nodes are in each state (``{"SUCCESS": 3, "FAILURE": 1}``)."""

    id: str
    name: str
    created: float
    state: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        """How many nodes the run has."""
        return sum(self.counts.values())


def record(app: Celeriac, run_id: str, created: float) -> None:
    """Add a run, applied at ``created`` (epoch seconds), to the index.

    Raises:
        BackendError: the backend cannot be reached.
    """
    backend, generation = app.backend, _generation(app)
    member = f"{created:.6f}:{run_id}"
    size = backend.add_to_set(dag_runs_key(generation), member, expires=expiry(app))
    if size >= RUNS_KEPT:
        # The pointer never expires: it is one small document, and a pointer that expired
        # before the sets it points at would hide live runs.
        pointer = {"generation": generation + 1}
        backend.put_document(dag_runs_pointer_key(), pointer, expires=None)


def newest(app: Celeriac, limit: int = RUNS_KEPT) -> list[tuple[str, float]]:
    """``(run id, created)`` of the newest runs recorded, newest first, at most ``limit``
    (and :data:`RUNS_KEPT`). A run applied twice under one id is listed once, at its latest
    time. Runs whose record has expired may still be listed: readers skip them.

    Raises:
        BackendError: the backend cannot be reached.
    """
    generation = _generation(app)
    members = app.backend.set_members(dag_runs_key(generation))
    if generation > 0:
        members |= app.backend.set_members(dag_runs_key(generation - 1))
    found: dict[str, float] = {}
    for member in members:
        stamp, _, run_id = member.partition(":")
        try:
            created = float(stamp)
        except ValueError:
            continue  # not a member this module wrote
        if run_id and created > found.get(run_id, -math.inf):
            found[run_id] = created
    ordered = sorted(found.items(), key=lambda item: (item[1], item[0]), reverse=True)
    return ordered[: max(0, min(limit, RUNS_KEPT))]


def recent_runs(app: Celeriac, limit: int = 50) -> list[DagRunSummary]:
    """The newest DAG runs, newest first, at most ``limit`` (and :data:`RUNS_KEPT`), with each
    one's state and node counts; runs whose record expired are left out. One read of each
    run's document, and one read of the results of every run's current attempts.

    Raises:
        BackendError: the backend cannot be reached.
    """
    documents = []
    for run_id, _ in newest(app, limit):
        document = app.backend.get_document(dag_key(run_id))
        if document is not None:
            documents.append(document)
    records = app.backend.get_many([i for d in documents for i in current_task_ids(d)])
    found = []
    for document in documents:
        node_states = [node.state for node in node_statuses(document, records)]
        found.append(
            DagRunSummary(
                id=str(document["id"]),
                name=str(document.get("name", "")),
                created=float(document.get("created", 0.0)),
                state=run_state(node_states) if node_states else "EMPTY",
                counts=dict(Counter(node_states)),
            )
        )
    return found


def _generation(app: Celeriac) -> int:
    pointer = app.backend.get_document(dag_runs_pointer_key()) or {}
    generation = pointer.get("generation", 0)
    return generation if isinstance(generation, int) and generation >= 0 else 0
