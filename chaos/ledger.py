"""The ledger: what the client was told, what ran, what was recorded, and what that adds up to.

As Jepsen's checker for queues does, every task id the client was told was enqueued (``delay()``
returned) is put in exactly one class at the end:

- **ok**: it ran once and its result is SUCCESS with the value it had to return;
- **duplicated**: as ok, but it ran more than once (each extra run counts against the budget);
- **lost**: it never ran, or it has no final result;
- **unexpected**: anything that should not exist: a FAILURE or a wrong value for it, a SUCCESS
  without a run, and any run or result of an id nobody enqueued.

Ids whose publish raised are *indeterminate* (the broker may have stored the message before the
reply was lost): they may run or not, and are neither lost nor unexpected. Ids that must fail
(a poison task: FAILURE after its deliveries ran out) and ids that must never run (a malformed
or forged message) are expected failures, counted apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celeriac import states
from celeriac.backends.base import ResultRecord

EXAMPLES = 3  # ids shown per kind of problem


@dataclass(frozen=True)
class Run:
    """One line of the run log: a task id that started, in which process, on which node."""

    task_id: str
    pid: int
    node: str


def read_runs(path: Path) -> list[Run]:
    """Every run logged so far, in the order they were logged."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        task_id, pid, node = line.split()
        runs.append(Run(task_id, int(pid), node))
    return runs


@dataclass
class Ledger:
    """What the client was told; filled in while the scenario sends."""

    expected: dict[str, Any] = field(default_factory=dict)  # id -> the value SUCCESS must hold
    indeterminate: set[str] = field(default_factory=set)  # the publish raised
    doomed: set[str] = field(default_factory=set)  # must end FAILURE (poison)
    refused: set[str] = field(default_factory=set)  # must never run (malformed, forged)

    def enqueued(self, task_id: str, value: Any) -> None:
        """``delay()`` returned ``task_id``; its result must be SUCCESS holding ``value``."""
        self.expected[task_id] = value

    def known(self) -> set[str]:
        """Every id the scenario made."""
        return set(self.expected) | self.indeterminate | self.doomed | self.refused


@dataclass(frozen=True)
class Counts:
    """The ledger's classes, counted."""

    enqueued: int = 0
    ok: int = 0
    duplicated: int = 0  # ids that ran more than once
    extra_runs: int = 0  # runs beyond the first, over every duplicated id
    lost: int = 0
    unexpected: int = 0
    expected_failures: int = 0  # doomed or refused ids that ended as they must
    expected_failures_total: int = 0
    indeterminate: int = 0  # publishes that raised
    indeterminate_ran: int = 0  # of those, the ones that ran all the same


Decode = Callable[[ResultRecord], Any]


class Audit:
    """Sorts a ledger's ids, given the runs and the stored results; notes why each problem is
    one (a few ids per kind) in ``problems``."""

    def __init__(self, ledger: Ledger, runs: Iterable[Run], records: Mapping[str, ResultRecord]):
        self.ledger = ledger
        self.runs = Counter(run.task_id for run in runs)
        self.records = records
        self.problems: dict[str, list[str]] = {}

    def _problem(self, kind: str, task_id: str, detail: str = "") -> None:
        self.problems.setdefault(kind, []).append(f"{task_id}{': ' if detail else ''}{detail}")

    def counts(self, decode: Decode) -> Counts:
        """Classify every id; see the module docstring."""
        classes: Counter[str] = Counter()
        extra = 0
        for task_id, value in self.ledger.expected.items():
            kind = self._classify(task_id, value, decode)
            classes[kind] += 1
            if kind == "duplicated":
                extra += self.runs[task_id] - 1
        failures = sum(self._failed_as_expected(task_id) for task_id in self.ledger.doomed)
        failures += sum(self._refused_as_expected(task_id) for task_id in self.ledger.refused)
        strangers = self._strangers()
        ledger = self.ledger
        return Counts(
            enqueued=len(ledger.expected),
            ok=classes["ok"],
            duplicated=classes["duplicated"],
            extra_runs=extra,
            lost=classes["lost"],
            unexpected=classes["unexpected"] + strangers + self._failures_missed(failures),
            expected_failures=failures,
            expected_failures_total=len(ledger.doomed) + len(ledger.refused),
            indeterminate=len(ledger.indeterminate),
            indeterminate_ran=sum(1 for i in ledger.indeterminate if self.runs[i]),
        )

    def _classify(self, task_id: str, value: Any, decode: Decode) -> str:
        record, runs = self.records.get(task_id), self.runs[task_id]
        if record is None or not record.ready:
            state = "no result" if record is None else f"state {record.state}"
            self._problem("lost", task_id, f"{runs} runs, {state}")
            return "lost"
        if record.state != states.SUCCESS:
            self._problem("unexpected", task_id, f"{record.state} after {runs} runs")
            return "unexpected"
        if runs == 0:
            self._problem("unexpected", task_id, "SUCCESS recorded but it never ran")
            return "unexpected"
        got = decode(record)
        if got != value:
            self._problem("unexpected", task_id, f"result {got!r}, expected {value!r}")
            return "unexpected"
        return "ok" if runs == 1 else "duplicated"

    def _failed_as_expected(self, task_id: str) -> bool:
        record = self.records.get(task_id)
        if record is not None and record.state == states.FAILURE and self.runs[task_id]:
            return True
        state = "no result" if record is None else record.state
        self._problem("expected FAILURE", task_id, f"{state} after {self.runs[task_id]} runs")
        return False

    def _refused_as_expected(self, task_id: str) -> bool:
        if task_id in self.ledger.expected:
            return True  # a forged copy of a real id: the real task's class says it all
        record = self.records.get(task_id)
        if self.runs[task_id] == 0 and (record is None or record.state == states.FAILURE):
            return True
        state = "no result" if record is None else record.state
        self._problem("must never run", task_id, f"{state} after {self.runs[task_id]} runs")
        return False

    def _failures_missed(self, failures: int) -> int:
        return len(self.ledger.doomed) + len(self.ledger.refused) - failures

    def _strangers(self) -> int:
        """Runs and results of ids the scenario never made."""
        known = self.ledger.known()
        strangers = {i for i in [*self.runs, *self.records] if i not in known}
        for task_id in sorted(strangers):
            self._problem("unexpected", task_id, "ran or has a result, but was never sent")
        return len(strangers)

    def summary(self) -> list[str]:
        """One line per kind of problem, with a few of its ids."""
        lines = []
        for kind, items in self.problems.items():
            shown = "; ".join(items[:EXAMPLES])
            more = f" (and {len(items) - EXAMPLES} more)" if len(items) > EXAMPLES else ""
            lines.append(f"{kind}: {len(items)}: {shown}{more}")
        return lines
