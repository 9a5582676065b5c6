"""What one scenario reports: its ledger's counts, the duplicate budget, its own checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from chaos.ledger import Counts


@dataclass(frozen=True)
class Check:
    """One promise a scenario checks besides the ledger (a worker did not crash, say)."""

    what: str
    ok: bool
    detail: str = ""


@dataclass
class Tally:
    """A scenario's result on one broker. ``budget`` is the most extra runs its faults allow
    (kills x concurrency); ``skipped`` says why it did not run, when it did not."""

    scenario: str
    counts: Counts = field(default_factory=Counts)
    budget: int = 0
    budget_reason: str = ""
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None

    @property
    def over_budget(self) -> bool:
        """More extra runs than the faults allow."""
        return self.counts.extra_runs > self.budget

    @property
    def passed(self) -> bool:
        """Nothing lost, nothing unexpected, duplicates within budget, every check held."""
        return self.skipped is not None or (
            not self.counts.lost
            and not self.counts.unexpected
            and not self.over_budget
            and all(check.ok for check in self.checks)
        )

    def failures(self) -> list[str]:
        """Why it failed, one line each (empty when it passed)."""
        lines = list(self.problems)
        if self.over_budget:
            lines.append(
                f"{self.counts.extra_runs} extra runs, over the budget of {self.budget}"
                f" ({self.budget_reason})"
            )
        lines += [
            f"check failed: {c.what}{': ' if c.detail else ''}{c.detail}"
            for c in self.checks
            if not c.ok
        ]
        return lines
