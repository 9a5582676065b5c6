"""Workflows: signatures now; chain, group, chord and DAGs build on them."""

from celeriac.canvas.signature import Signature, signature

__all__ = ["Signature", "signature"]
