"""Two beats with one killed: every fire due while a beat ran is sent exactly once, and the
survivor carries on without a gap."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from chaos.lab import Lab, no_crash
from chaos.ledger import Counts
from chaos.tally import Check, Tally

SLACK = 1.0  # seconds: a fire due this close to a beat's start or stop may or may not be sent


@dataclass(frozen=True)
class Beats:
    """Both beats run ``together`` seconds, then one is SIGKILLed and the other runs
    ``alone`` seconds; the entry fires every second."""

    together: float
    alone: float
    drain_timeout: float = 60.0


def two_beats(lab: Lab, p: Beats) -> Tally:
    """Count every fire due between the first beat's start and the survivor's stop."""
    with lab.crew(1, 4, pool="threads") as crew:
        first, second = lab.beat("beat-1"), lab.beat("beat-2")
        try:
            first.start()
            started = time.time()
            second.start()
            time.sleep(p.together)
            first.kill()
            killed = time.time()
            time.sleep(p.alone)
            ended = time.time()
            second.stop()
            stopped_cleanly = second.process is not None and second.process.returncode == 0
        finally:
            first.stop()
            second.stop()
        drained = lab.drain(crew, p.drain_timeout)
    dues = _dues(lab.beat_log)
    counts, problems = _count_fires(dues, started, ended)
    checks = [
        Check("the survivor stopped cleanly on SIGTERM", stopped_cleanly),
        Check(
            "fires on both sides of the kill",
            bool(dues) and dues[0] < killed - SLACK and dues[-1] > killed + SLACK,
        ),
        no_crash(crew),
    ]
    if not drained:
        checks.append(Check("drained in time", False, "the fires sent did not all run"))
    return Tally(
        lab.scenario,
        counts,
        budget=0,
        budget_reason="each fire is sent once",
        checks=checks,
        problems=problems,
    )


def _dues(log: Path) -> list[float]:
    if not log.exists():
        return []
    return sorted(float(line.split()[0]) for line in log.read_text().splitlines())


def _count_fires(dues: list[float], started: float, ended: float) -> tuple[Counts, list[str]]:
    """The fires due every second from the first one to the survivor's stop, each matched with
    its runs: ok (one), duplicated (more), lost (none); a run off that grid is unexpected."""
    if not dues:
        return Counts(enqueued=1, lost=1), ["lost: no fire ran at all"]
    first = dues[0]
    runs = Counter(round(due - first) for due in dues)
    off_grid = [due for due in dues if abs(due - first - round(due - first)) > 0.01]
    expected = range(max(int(ended - SLACK - first), max(runs)) + 1)
    late_start = max(0, int(first - started - SLACK - 1.0))  # seconds with no fire at the start
    lost = [k for k in expected if not runs[k]]
    duplicated = [k for k in expected if runs[k] > 1]
    problems = [f"lost: fires due at +{k}s" for k in lost[:3]]
    if late_start:
        problems.append(f"lost: the first fire came {first - started:.1f}s after the start")
    problems += [f"unexpected: a fire due at {due:.3f}, off the 1s grid" for due in off_grid[:3]]
    counts = Counts(
        enqueued=len(expected) + late_start,
        ok=sum(1 for k in expected if runs[k] == 1),
        duplicated=len(duplicated),
        extra_runs=sum(runs[k] - 1 for k in duplicated),
        lost=len(lost) + late_start,
        unexpected=len(off_grid),
    )
    return counts, problems
