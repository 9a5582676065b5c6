"""The report: one table per broker, a scenario a row, then why anything failed."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence

from chaos.tally import Tally

HEAD = (
    "scenario",
    "enqueued",
    "ok",
    "dup",
    "extra/budget",
    "lost",
    "unexpected",
    "expected fail",
    "checks",
    "seconds",
    "verdict",
)


def _row(tally: Tally) -> list[str]:
    if tally.skipped:
        return [tally.scenario, *["-"] * (len(HEAD) - 2), "skipped"]
    c = tally.counts
    failures = (
        f"{c.expected_failures}/{c.expected_failures_total}" if c.expected_failures_total else "-"
    )
    held = sum(check.ok for check in tally.checks)
    return [
        tally.scenario,
        str(c.enqueued),
        str(c.ok),
        str(c.duplicated),
        f"{c.extra_runs}/{tally.budget}",
        str(c.lost),
        str(c.unexpected),
        failures,
        f"{held}/{len(tally.checks)}",
        f"{tally.seconds:.0f}",
        "pass" if tally.passed else "FAIL",
    ]


def _notes(tallies: Sequence[Tally]) -> list[str]:
    notes = []
    for tally in tallies:
        if tally.skipped:
            notes.append(f"{tally.scenario}: skipped: {tally.skipped}")
        elif not tally.passed:
            notes += [f"{tally.scenario}: {line}" for line in tally.failures()]
        if tally.counts.indeterminate:
            c = tally.counts
            notes.append(
                f"{tally.scenario}: {c.indeterminate} publishes raised (indeterminate),"
                f" {c.indeterminate_ran} of them ran all the same"
            )
    return notes


def format_table(title: str, tallies: Sequence[Tally]) -> str:
    """The tallies of one broker as an aligned table under ``title``, failures below it."""
    rows = [list(HEAD), *(_row(t) for t in tallies)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEAD))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    lines = [title, "", line(rows[0]), rule, *map(line, rows[1:])]
    notes = _notes(tallies)
    return "\n".join([*lines, *([""] if notes else []), *notes])


def machine_line(short: bool) -> str:
    """When, where and which form."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    form = "short form (--short)" if short else "full form"
    return f"chaos {form}, {now}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
