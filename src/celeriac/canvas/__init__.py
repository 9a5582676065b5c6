"""Workflows: signatures, chain, group, chord, map/starmap/chunks, and DAGs.

How each one runs, and why none can hang, is written down in ``docs/design/workflows.md``.
"""

from celeriac.canvas.chain import chain
from celeriac.canvas.dag import (
    Dag,
    DagNode,
    DagNodeError,
    DagNodeNotFailed,
    DagRun,
    DagRunNotFound,
    NodeStatus,
    UnknownDagNode,
    dag,
)
from celeriac.canvas.dag_index import DagRunSummary, recent_runs
from celeriac.canvas.group import chord, group
from celeriac.canvas.maps import chunks, xmap, xstarmap
from celeriac.canvas.signature import Signature, maybe_signature, signature

__all__ = [
    "Dag",
    "DagNode",
    "DagNodeError",
    "DagNodeNotFailed",
    "DagRun",
    "DagRunNotFound",
    "DagRunSummary",
    "NodeStatus",
    "Signature",
    "UnknownDagNode",
    "chain",
    "chord",
    "chunks",
    "dag",
    "group",
    "maybe_signature",
    "recent_runs",
    "signature",
    "xmap",
    "xstarmap",
]
