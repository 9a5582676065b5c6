"""Workflows: signatures, chain, group, chord, map/starmap/chunks, and DAGs.

How each one runs, and why none can hang, is written down in ``docs/design/workflows.md``.
"""

from celeriac.canvas.chain import chain
from celeriac.canvas.dag import Dag, DagNode, DagRun, DagRunNotFound, NodeStatus, dag
from celeriac.canvas.group import chord, group
from celeriac.canvas.maps import chunks, xmap, xstarmap
from celeriac.canvas.signature import Signature, maybe_signature, signature

__all__ = [
    "Dag",
    "DagNode",
    "DagRun",
    "DagRunNotFound",
    "NodeStatus",
    "Signature",
    "chain",
    "chord",
    "chunks",
    "dag",
    "group",
    "maybe_signature",
    "signature",
    "xmap",
    "xstarmap",
]
