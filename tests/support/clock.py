"""A clock for tests: it stands still until told to move, so nothing waits on real time."""

from __future__ import annotations


class FakeClock:
    """Epoch seconds that move only when told to: ``clock()`` reads, ``advance()`` moves."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward."""
        self.now += seconds
