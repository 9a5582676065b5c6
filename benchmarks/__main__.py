"""``python -m benchmarks [SUITE ...] [--repeat N] [--tasks N] [--calls N] [--markdown]``.

Runs the named suites (default: sqlite, redis, amqp, then asyncio) in a temporary directory that
is deleted afterwards, and prints one table per suite. Progress goes to stderr, tables to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

from benchmarks.common import (
    BenchmarkError,
    Report,
    RunOptions,
    compile_bytecode,
    format_markdown,
    format_table,
    machine_header,
)


def _sqlite(options: RunOptions, workdir: Path) -> Report:
    from benchmarks import sqlite_suite

    return sqlite_suite.run(options, workdir)


def _redis(options: RunOptions, workdir: Path) -> Report:
    from benchmarks import redis_suite

    return redis_suite.run(options, workdir)


def _amqp(options: RunOptions, workdir: Path) -> Report:
    from benchmarks import amqp_suite

    return amqp_suite.run(options, workdir)


def _asyncio(options: RunOptions, workdir: Path) -> Report:
    from benchmarks import asyncio_suite

    return asyncio_suite.run(options, workdir)


# Each suite imports its peers' packages only when it runs, so a missing optional one (redis,
# celery) fails only the suite that needs it.
SUITES: dict[str, Callable[[RunOptions, Path], Report]] = {
    "sqlite": _sqlite,
    "redis": _redis,
    "amqp": _amqp,
    "asyncio": _asyncio,
}
DEFAULT_SUITES = ("sqlite", "redis", "amqp", "asyncio")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="celeriac against its peers, side by side."
    )
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"one of: {', '.join(SUITES)}")
    parser.add_argument("--repeat", type=_positive, default=RunOptions.repeat)
    parser.add_argument("--tasks", type=_positive, default=RunOptions.tasks)
    parser.add_argument("--calls", type=_positive, default=RunOptions.calls)
    parser.add_argument("--warmup", type=_positive, default=RunOptions.warmup_calls)
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    args = parser.parse_args(argv)
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}: choose from {', '.join(SUITES)}")
    return args


@contextlib.contextmanager
def _environment_restored() -> Iterator[None]:
    """Undo what a suite sets in ``os.environ`` for its workers (the Redis suite sets
    ``$BENCH_REDIS_URL`` to its default, db 12): each suite starts from the caller's environment
    and falls back on its own defaults (the AMQP suite's results go to db 13)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the suites' finally blocks: workers stop


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suites; return the exit status (1 when a peer failed)."""
    args = parse_arguments(argv)
    options = RunOptions(
        repeat=args.repeat, tasks=args.tasks, calls=args.calls, warmup_calls=args.warmup
    )
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="celeriac-bench-") as tmp:
        workdir = Path(tmp)
        machine = [*machine_header(workdir), compile_bytecode()]
        for name in args.suites or DEFAULT_SUITES:
            try:
                with _environment_restored():
                    report = SUITES[name](options, workdir)
            except BenchmarkError as exc:
                print(f"benchmark suite {name!r} failed: {exc}", file=sys.stderr)
                return 1
            except ModuleNotFoundError as exc:
                print(
                    f"benchmark suite {name!r} needs {exc.name!r}: pip install -e '.[bench]'",
                    file=sys.stderr,
                )
                return 1
            print(format_table(report, machine), end="\n\n", flush=True)
            if args.markdown:
                print(format_markdown(report, machine), end="\n\n", flush=True)
    print(f"benchmarks took {time.monotonic() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
