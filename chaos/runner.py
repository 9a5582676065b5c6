"""Running scenarios on a broker: each in a fresh lab, timed, its faults skipped where the broker
cannot take them, and a scenario that raised reported as failed rather than ending the run."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.lab import Lab
from chaos.scenario import Scenario
from chaos.tally import Check, Tally
from chaos.targets import OwnRedis, SqliteFiles, Target, UserRedis


@dataclass(frozen=True)
class RunOptions:
    """What the command line asked for."""

    scenarios: tuple[Scenario[Any], ...]
    short: bool
    workdir: Path
    redis_url: str | None = None


def open_target(kind: str, options: RunOptions) -> Target:
    """The broker ``kind`` ("redis" or "sqlite") to test.

    Raises:
        RedisServerError: no redis-server to start (and no ``--redis-url``).
    """
    if kind == "sqlite":
        return SqliteFiles(options.workdir / "sqlite")
    if options.redis_url:
        return UserRedis(options.redis_url)
    return OwnRedis(options.workdir / "redis-server")


def run_all(target: Target, options: RunOptions) -> list[Tally]:
    """Every scenario of ``options`` on ``target``, in order."""
    tallies = []
    for scenario in options.scenarios:
        tally = run_one(target, scenario, options)
        tallies.append(tally)
        verdict = "skipped" if tally.skipped else "pass" if tally.passed else "FAIL"
        print(f"  {target.kind} {scenario.name}: {verdict} ({tally.seconds:.0f}s)", file=sys.stderr)
    return tallies


def _reason_to_skip(target: Target, needs: Sequence[str]) -> str | None:
    return next((reason for need in needs if (reason := target.cannot(need))), None)


def run_one(target: Target, scenario: Scenario[Any], options: RunOptions) -> Tally:
    """One scenario on ``target``; its tally, timed."""
    reason = _reason_to_skip(target, scenario.needs)
    if reason:
        return Tally(scenario.name, skipped=reason)
    print(f"  {target.kind} {scenario.name}: {scenario.summary}", file=sys.stderr)
    started = time.monotonic()
    lab = Lab(
        target,
        options.workdir,
        scenario.name,
        lease=scenario.lease,
        signed=scenario.signed,
        beat=scenario.beat,
    )
    try:
        tally = scenario.run(lab, scenario.short if options.short else scenario.full)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        failed = Check("ran to its end", False, f"{type(exc).__name__}: {exc}")
        tally = Tally(scenario.name, checks=[failed])
    finally:
        lab.close()
    tally.seconds = time.monotonic() - started
    return tally
