"""``python -m chaos [SCENARIO ...] [--broker redis|sqlite|both] [--redis-url URL] [--short]``.

Runs the named scenarios (default: all) on each broker, in a temporary directory deleted
afterwards (kept with ``--keep``), and prints one table per broker. Progress goes to stderr,
tables to stdout. The exit status is 1 when anything was lost or unexpected, duplicates went
over their budget, or a check failed; 2 when the run could not start.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from chaos.redis_server import RedisServerError
from chaos.report import format_table, machine_line
from chaos.runner import RunOptions, open_target, run_all
from chaos.scenarios import BY_NAME, SCENARIOS

BROKERS = {"redis": ("redis",), "sqlite": ("sqlite",), "both": ("redis", "sqlite")}


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = argparse.ArgumentParser(
        prog="python -m chaos", description="celeriac's fault suite: kill, freeze, forge, count."
    )
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="default: all")
    parser.add_argument("--broker", choices=BROKERS, default="both")
    parser.add_argument(
        "--redis-url", help="your Redis instead of a throw-away redis-server (keys are prefixed)"
    )
    parser.add_argument("--short", action="store_true", help="the CI form: fewer, shorter faults")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}: choose from {', '.join(BY_NAME)}")
    return args


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: workers and servers stop


def _list() -> int:
    for scenario in SCENARIOS:
        print(f"{scenario.name:16} {scenario.summary}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios; return the exit status."""
    args = parse_arguments(argv)
    if args.list:
        return _list()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    chosen = tuple(BY_NAME[name] for name in args.scenarios) or SCENARIOS
    workdir = Path(tempfile.mkdtemp(prefix="celeriac-chaos-"))
    options = RunOptions(chosen, args.short, workdir, args.redis_url)
    started, passed = time.monotonic(), True
    try:
        for kind in BROKERS[args.broker]:
            try:
                target = open_target(kind, options)
            except RedisServerError as exc:
                print(f"chaos: cannot test {kind}: {exc}", file=sys.stderr)
                return 2
            try:
                title = f"{machine_line(args.short)}\n{target.describe()}"
                tallies = run_all(target, options)
            finally:
                target.close()
            print(format_table(title, tallies), end="\n\n", flush=True)
            passed = passed and all(tally.passed for tally in tallies)
    finally:
        if args.keep:
            print(f"chaos: work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"chaos took {time.monotonic() - started:.0f}s", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
