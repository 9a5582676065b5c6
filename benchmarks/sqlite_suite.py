"""The SQLite suite: celeriac's embedded broker against Huey's SqliteHuey, side by side.

Each peer runs its own worker command with 2 worker processes and stores every result; each
repetition gets a fresh database file; peers alternate (celeriac, huey, celeriac, huey, ...).

- throughput: ``--tasks`` no-op calls are enqueued while no worker runs (not timed), then the
  worker is started. Timed from the start command to the moment the last result is stored, as
  seen by polling the result store from this process every 20 ms. Worker start-up is included;
  the "start to first result" row shows how much of the time it is. Over the same span, the
  CPU per task of the worker's main process and of its children (``benchmarks/cpu.py``).
- latency: ``--calls`` sequential ``delay(x).get()`` round trips against a warm worker, after
  ``--warmup`` calls; p50 and p99.
- idle memory and CPU: PSS of the worker's whole process tree after the round trips, then the
  CPU the tree uses over 2 s with nothing to do (the price of each peer's polling).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import huey.exceptions

import celeriac
from benchmarks import cpu
from benchmarks.common import (
    APPS_DIR,
    BenchmarkError,
    Report,
    Row,
    RunOptions,
    WorkerProcess,
    cpu_seconds,
    percentile,
    pss_kib,
    wait_until,
)

WORKERS = 2
POLL_INTERVAL = 0.02  # seconds between result-store counts while timing throughput
START_TIMEOUT = 60.0  # seconds a worker may take to produce its first result
CALL_TIMEOUT = 10.0  # seconds one warm round trip may take
WAIT_SLICE = 0.5  # seconds a result wait blocks before the worker is checked for life
IDLE_WINDOW = 2.0  # seconds over which an idle worker's CPU use is measured
HUEY_POLL = 0.001  # seconds: Huey's consumer poll delay and its Result.get poll interval

CELERIAC_COMMAND = [
    str(Path(sys.executable).with_name("celeriac")),
    *("-A", "celeriac_app", "worker", "-c", str(WORKERS), "-P", "prefork", "-l", "warning"),
]
HUEY_COMMAND = [
    str(Path(sys.executable).with_name("huey_consumer")),
    *("huey_app.huey", "-k", "process", "-w", str(WORKERS), "-q"),
    *("-d", str(HUEY_POLL), "-m", str(HUEY_POLL), "-b", "1.0"),
]


def _import_app(name: str) -> ModuleType:
    """The task module ``name`` from ``benchmarks/apps``, imported under the name its worker
    uses: Huey names tasks after their function's module, so both sides must agree."""
    if str(APPS_DIR) not in sys.path:
        sys.path.insert(0, str(APPS_DIR))
    return importlib.import_module(name)


PENDING = object()  # what Client.wait returns when the result is not there yet


class Client(Protocol):
    """The benchmark process's side of one peer, on one database file."""

    def enqueue_noops(self, count: int) -> None:
        """Send ``count`` no-op calls."""

    def stored_results(self) -> int:
        """How many results are stored (a cheap count)."""

    def send_echo(self, value: int) -> Any:
        """Send ``echo(value)``; return the peer's result handle."""

    def wait(self, handle: Any, timeout: float) -> Any:
        """The handle's result, waiting up to ``timeout`` seconds; ``PENDING`` if not there."""

    def close(self) -> None:
        """Close connections."""


class CeleriacClient:
    """celeriac through its public API; results counted with one SQL ``COUNT``."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.bench = _import_app("celeriac_app").create(f"sqlite:///{db_path}")
        self._counter: sqlite3.Connection | None = None

    def enqueue_noops(self, count: int) -> None:
        """Send ``count`` calls of ``noop``, one ``delay()`` each."""
        for _ in range(count):
            self.bench.noop.delay()

    def stored_results(self) -> int:
        """SUCCESS rows in ``celeriac_results`` (0 until the worker has created the table)."""
        if self._counter is None:
            self._counter = sqlite3.connect(self.db_path, isolation_level=None)
        try:
            row = self._counter.execute(
                "SELECT COUNT(*) FROM celeriac_results WHERE state = 'SUCCESS'"
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(row[0])

    def send_echo(self, value: int) -> Any:
        """``echo.delay(value)``."""
        return self.bench.echo.delay(value)

    def wait(self, handle: Any, timeout: float) -> Any:
        """``handle.get(timeout=...)``: the wait watches the file's data version."""
        try:
            return handle.get(timeout=timeout)
        except celeriac.TimeoutError:
            return PENDING

    def close(self) -> None:
        """Close the app's and the counter's connections."""
        self.bench.app.close()
        if self._counter is not None:
            self._counter.close()


class HueyClient:
    """Huey through its public API; results counted with ``result_store_size()``."""

    def __init__(self, db_path: Path, synchronous: str = "NORMAL") -> None:
        self.bench = _import_app("huey_app").create(str(db_path), synchronous)

    def enqueue_noops(self, count: int) -> None:
        """Send ``count`` calls of ``noop``."""
        for _ in range(count):
            self.bench.noop()

    def stored_results(self) -> int:
        """Rows in Huey's result table (``SELECT count(*) FROM kv WHERE queue = ?``)."""
        return int(self.bench.huey.storage.result_store_size())

    def send_echo(self, value: int) -> Any:
        """``echo(value)``."""
        return self.bench.echo(value)

    def wait(self, handle: Any, timeout: float) -> Any:
        """``handle.get(blocking=True)`` with its tightest poll.

        ``Result.get`` checks once, then sleeps ``min(delay, max_delay)`` between checks, the
        delay starting at 50 ms and growing by ``backoff``: with ``max_delay`` = 1 ms and
        ``backoff`` = 1 it checks every millisecond (by default the first sleep is 50 ms).
        """
        try:
            return handle.get(blocking=True, timeout=timeout, backoff=1.0, max_delay=HUEY_POLL)
        except huey.exceptions.ResultTimeout:
            return PENDING

    def close(self) -> None:
        """Close the storage connection."""
        self.bench.huey.storage.close()


@dataclass(frozen=True)
class Peer:
    """How to start one peer's worker and talk to it."""

    name: str
    command: list[str]
    location_env: str
    location: Callable[[Path], str]
    client: Callable[[Path], Client]
    env: tuple[tuple[str, str], ...] = ()

    def worker(self, db_path: Path, log_path: Path) -> WorkerProcess:
        """The worker command for the database ``db_path``, logging to ``log_path``."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APPS_DIR), env.get("PYTHONPATH")]))
        env[self.location_env] = self.location(db_path)
        env.update(self.env)
        return WorkerProcess(self.name, self.command, env=env, log_path=log_path)


PEERS = (
    Peer(
        "celeriac",
        CELERIAC_COMMAND,
        "CELERIAC_BROKER_URL",
        lambda path: f"sqlite:///{path}",
        CeleriacClient,
    ),
    # Huey at celeriac's durability (WAL, synchronous NORMAL), and as it ships (FULL).
    Peer(
        "huey",
        HUEY_COMMAND,
        "BENCH_HUEY_DB",
        str,
        HueyClient,
        (("BENCH_HUEY_SYNCHRONOUS", "NORMAL"),),
    ),
    Peer(
        "huey-default",
        HUEY_COMMAND,
        "BENCH_HUEY_DB",
        str,
        lambda path: HueyClient(path, "FULL"),
        (("BENCH_HUEY_SYNCHRONOUS", "FULL"),),
    ),
)


def _remove_database(db_path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db_path}{suffix}").unlink()


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- scenarios -----------------------------------------------------------------------------------
def throughput(
    peer: Peer, workdir: Path, run: int, tasks: int
) -> tuple[float, float, cpu.CpuSample]:
    """Tasks per second from worker start to the last stored result, ms to the first, and the
    worker's CPU per task over the run.

    Raises:
        BenchmarkError: the worker exited or did not finish in time.
    """
    db_path = workdir / f"{peer.name}-throughput-{run}.db"
    client = peer.client(db_path)
    try:
        client.enqueue_noops(tasks)
        with peer.worker(db_path, workdir / f"{peer.name}-throughput-{run}.log") as worker:
            started = worker.start()
            first = wait_until(
                lambda: client.stored_results() > 0,
                worker,
                timeout=START_TIMEOUT,
                interval=POLL_INTERVAL,
                what="the first result",
            )
            done = wait_until(
                lambda: client.stored_results() >= tasks,
                worker,
                timeout=START_TIMEOUT + tasks / 50,
                interval=POLL_INTERVAL,
                what=f"storing all {tasks} results",
            )
            used = cpu.process_cpu(worker.pid)  # before the worker stops: its children exit
    finally:
        client.close()
        _remove_database(db_path)
    return tasks / (done - started), (first - started) * 1000, cpu.CpuSample.of(tasks, used)


def _round_trip(client: Client, worker: WorkerProcess, value: int, timeout: float) -> None:
    """One ``echo(value)`` round trip; the wait is sliced so that a dead worker is noticed."""
    deadline = time.monotonic() + timeout
    try:
        handle = client.send_echo(value)
        answer = client.wait(handle, min(WAIT_SLICE, timeout))
        while answer is PENDING:
            worker.check()
            if time.monotonic() >= deadline:
                raise BenchmarkError(
                    f"{worker.name}: no result for echo({value}) within {timeout:.0f}s\n"
                    f"{worker.log_tail()}"
                )
            answer = client.wait(handle, WAIT_SLICE)
    except BenchmarkError:
        raise
    except Exception as exc:
        worker.check()
        raise BenchmarkError(
            f"{worker.name}: round trip echo({value}) failed: {type(exc).__name__}: {exc}\n"
            f"{worker.log_tail()}"
        ) from exc
    if answer != value:
        raise BenchmarkError(f"{worker.name}: echo({value}) returned {answer!r}")


@dataclass(frozen=True)
class LatencySample:
    """One latency repetition: round trips in ms, and the idle worker tree's footprint."""

    p50: float
    p99: float
    pss_mib: float
    idle_cpu_percent: float
    startup_cpu_ms: float


def _idle_footprint(worker: WorkerProcess) -> tuple[float, float]:
    """PSS of the worker tree in MiB, and its CPU use while idle (% of one core)."""
    pids = worker.tree()
    before = cpu_seconds(pids)
    time.sleep(IDLE_WINDOW)
    used = cpu_seconds(pids) - before
    return pss_kib(worker.tree()) / 1024, 100 * used / IDLE_WINDOW


def latency(peer: Peer, workdir: Path, run: int, options: RunOptions) -> LatencySample:
    """Round trips against a warm worker, then the idle worker tree's memory and CPU.

    Raises:
        BenchmarkError: the worker exited, or a call failed or timed out.
    """
    db_path = workdir / f"{peer.name}-latency-{run}.db"
    client = peer.client(db_path)
    times: list[float] = []
    try:
        with peer.worker(db_path, workdir / f"{peer.name}-latency-{run}.log") as worker:
            worker.start()
            _round_trip(client, worker, -1, START_TIMEOUT)  # waits for the worker to come up
            startup = 1000 * sum(cpu.process_cpu(worker.pid))
            for value in range(options.warmup_calls - 1):
                _round_trip(client, worker, value, CALL_TIMEOUT)
            for value in range(options.calls):
                started = time.perf_counter()
                _round_trip(client, worker, value, CALL_TIMEOUT)
                times.append((time.perf_counter() - started) * 1000)
            memory, idle_cpu = _idle_footprint(worker)
    finally:
        client.close()
        _remove_database(db_path)
    return LatencySample(percentile(times, 50), percentile(times, 99), memory, idle_cpu, startup)


# -- the suite -----------------------------------------------------------------------------------
def _samples(peers: Sequence[Peer]) -> dict[str, list[float]]:
    return {peer.name: [] for peer in peers}


def _huey_durability() -> str:
    return (
        "huey: WAL, synchronous NORMAL (celeriac's durability); huey-default: as Huey ships,"
        " synchronous FULL (an fsync per commit)"
    )


def _settings(options: RunOptions) -> list[str]:
    return [
        f"setup:   {WORKERS} worker processes per peer, results stored, fresh database file per"
        f" repetition, peers interleaved, repetitions: {options.repeat}",
        f"celeriac worker: celeriac -A celeriac_app worker -c {WORKERS} -P prefork -l warning",
        f"huey worker:     huey_consumer huey_app.huey {' '.join(HUEY_COMMAND[2:])}",
        f"huey storage:    {_huey_durability()}",
        f"throughput: {options.tasks} no-op tasks enqueued first; timed from the worker start"
        f" command to the last stored result (result store polled every"
        f" {POLL_INTERVAL * 1000:.0f} ms)",
        "CPU per task: over the throughput run, start-up included (see the start-up row); the"
        " main process and its children (live descendants + reaped) from /proc",
        f"latency:    {options.calls} sequential delay(x).get() after {options.warmup_calls}"
        " warm-up calls; huey: Result.get(blocking=True, backoff=1.0,"
        f" max_delay={HUEY_POLL}), i.e. a check every {HUEY_POLL * 1000:.0f} ms",
        "idle:       PSS (/proc/<pid>/smaps_rollup) of the worker and all its descendants after"
        f" the round trips, then their CPU use over {IDLE_WINDOW:.0f} s with nothing to do",
    ]


def run(options: RunOptions, workdir: Path) -> Report:
    """Run every scenario for both peers; see the module docstring.

    Raises:
        BenchmarkError: a peer crashed, hung or answered wrongly.
    """
    rate, first = _samples(PEERS), _samples(PEERS)
    used: dict[str, list[cpu.CpuSample]] = {peer.name: [] for peer in PEERS}
    p50, p99, memory, idle, startup = (_samples(PEERS) for _ in range(5))
    for run_number in range(1, options.repeat + 1):
        for peer in PEERS:
            per_second, first_ms, spent = throughput(peer, workdir, run_number, options.tasks)
            rate[peer.name].append(per_second)
            first[peer.name].append(first_ms)
            used[peer.name].append(spent)
            _progress(
                f"throughput {run_number}/{options.repeat} {peer.name}: {per_second:.0f}/s;"
                f" CPU µs/task: main {spent.main:.0f}, children {spent.children:.0f}"
            )
    for run_number in range(1, options.repeat + 1):
        for peer in PEERS:
            sample = latency(peer, workdir, run_number, options)
            p50[peer.name].append(sample.p50)
            p99[peer.name].append(sample.p99)
            memory[peer.name].append(sample.pss_mib)
            idle[peer.name].append(sample.idle_cpu_percent)
            startup[peer.name].append(sample.startup_cpu_ms)
            _progress(
                f"latency {run_number}/{options.repeat} {peer.name}: p50 {sample.p50:.2f} ms,"
                f" p99 {sample.p99:.2f} ms, PSS {sample.pss_mib:.1f} MiB,"
                f" idle CPU {sample.idle_cpu_percent:.1f}%"
            )
    return Report(
        title="SQLite broker: celeriac vs Huey (SqliteHuey)",
        peers=tuple(peer.name for peer in PEERS),
        versions={name: metadata.version(name) for name in ("celeriac", "huey")},
        settings=_settings(options),
        rows=[
            Row("throughput (tasks/s, higher is better)", rate),
            *cpu.rows(used),
            Row("start to first result (ms)", first),
            Row("round trip p50 (ms)", p50, digits=2),
            Row("round trip p99 (ms)", p99, digits=2),
            Row("idle memory, PSS of tree (MiB)", memory, digits=1),
            Row("idle CPU of tree (% of one core)", idle, digits=1),
            Row("worker start-up to its first result, CPU of tree (ms)", startup),
        ],
    )
