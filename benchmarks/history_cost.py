"""What task events and history cost a worker: the throughput scenario with ``task_history``
on and off, interleaved, on SQLite and on Redis.

Run: ``.venv/bin/python -m benchmarks.history_cost [tasks] [repeat] [suite ...]`` (default
20,000 no-op tasks, 3 runs of each side, both suites). The Redis half needs an empty
``$BENCH_REDIS_URL`` (as ``benchmarks/redis_suite.py``). Prints each run and the ratio of the
medians (history on / off), with each run's CPU per task (the worker's main process, its
children, and the Redis server), measured up to the last stored result, as the throughput.
On Redis a third side, "watched", runs the history on with a dashboard's indexer beside the
worker (``benchmarks/history_watch.py``): what the history costs while somebody reads it.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from benchmarks import cpu, redis_suite, sqlite_suite

Run = Callable[[int], tuple[float, cpu.CpuSample]]  # run number -> tasks/s, CPU per task


def _sqlite_runs(workdir: Path, tasks: int) -> dict[str, Run]:
    on = sqlite_suite.PEERS[0]
    command = [("celeriac_nohistory_app" if c == "celeriac_app" else c) for c in on.command]
    off = replace(on, name="celeriac-history-off", command=command)

    def runner(peer: sqlite_suite.Peer) -> Run:
        def run_once(run: int) -> tuple[float, cpu.CpuSample]:
            rate, _first, used = sqlite_suite.throughput(peer, workdir, run, tasks)
            return rate, used

        return run_once

    return {"on": runner(on), "off": runner(off)}


def _redis_runs(workdir: Path, tasks: int) -> dict[str, Run]:
    on = redis_suite.PEERS[0]
    off_command = [
        ("celeriac_redis_nohistory_app" if c == "celeriac_redis_app" else c)
        for c in redis_suite.COMMANDS["celeriac"]
    ]
    redis_suite.COMMANDS["celeriac-history-off"] = off_command
    off = redis_suite.Peer("celeriac-history-off", on.client)
    db = redis_suite.Database(os.environ.get(redis_suite.URL_ENV, redis_suite.DEFAULT_URL))
    db.check_empty()

    def runner(peer: redis_suite.Peer) -> Run:
        return lambda run: redis_suite.throughput(peer, db, workdir, tasks)

    def watched(run: int) -> tuple[float, cpu.CpuSample]:
        with _watching(db.url):
            return redis_suite.throughput(on, db, workdir, tasks)

    return {"on": runner(on), "off": runner(off), "watched": watched}


@contextlib.contextmanager
def _watching(url: str) -> Iterator[None]:
    """A dashboard's indexer (``benchmarks/history_watch.py``) running beside the worker."""
    command = [sys.executable, "-m", "benchmarks.history_watch", url]
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None
        watcher.stdout.readline()  # "watching"
        yield
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=30)
        print(f"  (the indexer beside it: {out.strip()})", flush=True)


def main() -> None:
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    suites = sys.argv[3:] or ["sqlite", "redis"]
    with tempfile.TemporaryDirectory() as tmp:
        for suite in suites:
            build = _sqlite_runs if suite == "sqlite" else _redis_runs
            runs = build(Path(tmp), tasks)
            rates: dict[str, list[float]] = {side: [] for side in runs}
            for run in range(repeat):
                for side in list(runs)[::-1] if run % 2 else list(runs):
                    rate, used = runs[side](run)
                    rates[side].append(rate)
                    redis = "" if used.redis is None else f", redis {used.redis:5.0f}"
                    print(
                        f"{suite} history {side:7}: {rate:8.0f} tasks/s; CPU us/task: main"
                        f" {used.main:5.0f}, children {used.children:5.0f}{redis}",
                        flush=True,
                    )
            on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
            print(f"{suite}: median on {on:.0f}/s, off {off:.0f}/s, on/off = {on / off:.3f}")
            if rates.get("watched"):
                watched = statistics.median(rates["watched"])
                print(
                    f"{suite}: watched (an indexer beside it) {watched:.0f}/s, /off = "
                    f"{watched / off:.3f}"
                )


if __name__ == "__main__":
    main()
