"""The asyncio side's two speed targets (issue 13): ``python -m benchmarks.asyncio_speed``.

- **Round trip**, one call at a time, 300 calls after 30 warm-up ones: ``delay(x).get()`` (the
  thread client), ``await (await echo.adelay(x))`` and ``await r.aget()`` (the asyncio client,
  on asyncio's own loop), p50 and p99, and the client's CPU per call; against
  ``-P asyncio -c 100`` (an ``async def`` echo) and against ``-P prefork -c 2`` (a plain one),
  which splits what the client costs from what the worker does.
- **No-ops**: 5,000 sent as one group, first send to last result (read every 10 ms): ``-P
  asyncio -c 100`` with an ``async def`` no-op against ``-P threads -c 100`` with a plain one;
  the rate and the CPU per task of the worker's main process, of its pool's children and of its
  events process (``celeriac-events``), read from ``/proc`` while the worker runs.

Each repetition (``--repeat``, default 3) runs every worker once, in a new order each time. The
database is ``$BENCH_REDIS_URL`` (default db 14 of 127.0.0.1:6379); it must be empty, and is
flushed after every run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import (
    APPS_DIR,
    BenchmarkError,
    Report,
    Row,
    WorkerProcess,
    cpu_seconds,
    format_table,
    machine_header,
    percentile,
    wait_until,
)

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
CALLS, WARMUP, NOOPS = 300, 30, 5_000
POOLS = {
    "asyncio": ("-P", "asyncio", "-c", "100"),
    "prefork": ("-P", "prefork", "-c", "2"),
    "threads": ("-P", "threads", "-c", "100"),
}
EVENTS = "celeriac-events"  # the events process's name in /proc/<pid>/comm


def _worker(pool: str, workdir: Path) -> WorkerProcess:
    env = dict(os.environ, BENCH_REDIS_URL=URL, PYTHONPATH=str(APPS_DIR))
    command = [str(Path(sys.executable).with_name("celeriac")), "-A", "aio_speed_app", "worker"]
    command += ["-l", "warning", *POOLS[pool]]
    return WorkerProcess(pool, command, env=env, log_path=workdir / f"speed-{pool}.log")


def _round_trips(app: Any, pool: str) -> dict[str, list[float]]:
    """p50 and p99 (ms) and the client's CPU per call (us), each way of calling."""
    echo = app.tasks["aio_speed_app.aecho" if pool == "asyncio" else "aio_speed_app.echo"]
    out: dict[str, list[float]] = {}

    def sync() -> list[float]:
        times = []
        for i in range(CALLS + WARMUP):
            started = time.perf_counter()
            if echo.delay(i).get(timeout=30) != i:
                raise BenchmarkError(f"echo({i}) came back wrong")
            times.append(time.perf_counter() - started)
        return times

    async def awaited(how: str) -> list[float]:
        times = []
        for i in range(CALLS + WARMUP):
            started = time.perf_counter()
            result = await echo.adelay(i)
            value = await result if how == "await" else await result.aget(timeout=30)
            if value != i:
                raise BenchmarkError(f"echo({i}) came back as {value!r}")
            times.append(time.perf_counter() - started)
        return times

    ways: dict[str, Callable[[], list[float]]] = {
        "delay().get()": sync,
        "await adelay()": lambda: asyncio.run(awaited("await")),
        "adelay() + aget()": lambda: asyncio.run(awaited("aget")),
    }
    for name, run in ways.items():
        cpu = time.process_time()
        times = sorted(run()[WARMUP:])
        out[name] = [
            percentile(times, 50) * 1e3,
            percentile(times, 99) * 1e3,
            (time.process_time() - cpu) / (CALLS + WARMUP) * 1e6,
        ]
    return out


def _noops(app: Any, pool: str, worker: WorkerProcess) -> list[float]:
    """Tasks/s, then the CPU per task (us) of the main process, the pool's children, events."""
    from celeriac import group, states

    noop = app.tasks["aio_speed_app.anoop" if pool == "asyncio" else "aio_speed_app.noop"]
    pids = worker.tree()[1:]
    events = [p for p in pids if Path(f"/proc/{p}/comm").read_text().strip() == EVENTS]
    children = [p for p in pids if p not in events]
    groups = ([worker.pid], children, events)
    before = [cpu_seconds(g) for g in groups]
    started = time.perf_counter()
    pending = [r.id for r in group(noop.s() for _ in range(NOOPS)).apply_async().results]

    def done() -> bool:
        nonlocal pending
        records = app.backend.get_many(pending)
        pending = [
            i for i in pending if i not in records or records[i].state not in states.READY_STATES
        ]
        return not pending

    ended = wait_until(done, worker, timeout=300, interval=0.01, what="the last no-op")
    used = [(cpu_seconds(g) - b) / NOOPS * 1e6 for g, b in zip(groups, before, strict=True)]
    return [NOOPS / (ended - started), *used]


def run(repeat: int, workdir: Path) -> list[Report]:
    """Every scenario, ``repeat`` times, workers interleaved; see the module docstring.

    Raises:
        BenchmarkError: Redis is not empty, or a worker failed or hung.
    """
    import redis

    os.environ["BENCH_REDIS_URL"] = URL  # the client's app, as the workers'
    sys.path.insert(0, str(APPS_DIR))
    from aio_speed_app import app  # type: ignore[import-not-found]

    db = redis.Redis.from_url(URL)
    if db.dbsize():
        raise BenchmarkError(f"the Redis database {URL} is not empty: flush it first")
    trips: dict[str, dict[str, list[list[float]]]] = {}
    noops: dict[str, list[list[float]]] = {}
    order = ["asyncio", "prefork", "threads"]
    for repetition in range(repeat):
        for pool in order[repetition % 3 :] + order[: repetition % 3]:
            with _worker(pool, workdir) as worker:
                worker.start()
                echo = "aio_speed_app.aecho" if pool == "asyncio" else "aio_speed_app.echo"
                app.tasks[echo].delay(0).get(timeout=60)
                if pool != "threads":
                    for way, figures in _round_trips(app, pool).items():
                        trips.setdefault(way, {}).setdefault(pool, []).append(figures)
                if pool != "prefork":
                    noops.setdefault(pool, []).append(_noops(app, pool, worker))
            db.flushdb()
            print(f"speed {repetition + 1}/{repeat} {pool} done", file=sys.stderr, flush=True)
    return [_trips_report(trips, repeat), _noops_report(noops, repeat)]


def _trips_report(trips: dict[str, dict[str, list[list[float]]]], repeat: int) -> Report:
    rows = []
    for way, by_pool in trips.items():
        for index, what in enumerate(("p50 (ms)", "p99 (ms)", "client CPU per call (us)")):
            samples = {pool: [figures[index] for figures in runs] for pool, runs in by_pool.items()}
            rows.append(Row(f"{way}: {what}", samples, digits=0 if index == 2 else 2))
    return Report(
        title=f"round trip, one call at a time ({CALLS} after {WARMUP} warm-up calls)",
        peers=("asyncio", "prefork"),
        versions={},
        settings=[
            f"redis: {URL}",
            f"repeat: {repeat}",
            "workers: -P asyncio -c 100, -P prefork -c 2",
        ],
        rows=rows,
    )


def _noops_report(noops: dict[str, list[list[float]]], repeat: int) -> Report:
    names = (
        "tasks/s",
        "CPU per task: main (us)",
        "CPU per task: pool children (us)",
        "CPU per task: events process (us)",
    )
    rows = [
        Row(name, {pool: [run[index] for run in runs] for pool, runs in noops.items()})
        for index, name in enumerate(names)
    ]
    return Report(
        title=f"{NOOPS:,} no-ops sent as one group",
        peers=("asyncio", "threads"),
        versions={},
        settings=[
            f"redis: {URL}",
            f"repeat: {repeat}",
            "workers: -P asyncio -c 100, -P threads -c 100",
        ],
        rows=rows,
    )


def main() -> int:
    """Run, print the two tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.asyncio_speed")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="celeriac-speed-") as directory:
        workdir = Path(directory)
        reports = run(options.repeat, workdir)
        for report in reports:
            print(format_table(report, machine_header(workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
