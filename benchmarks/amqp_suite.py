"""The AMQP suite: celeriac against Celery 5, both on the same RabbitMQ, results in Redis.

Each peer runs its own worker command with 2 worker processes and stores every result in the
Redis database at ``$BENCH_REDIS_URL`` (default db 13 of 127.0.0.1:6379; it must be empty at
the start, and is flushed after every run and at the end): celeriac (``celeriac -A
celeriac_amqp_app worker -c 2 -P prefork``, broker ``$BENCH_AMQP_URL``, default
``amqp://guest:guest@127.0.0.1:5672/``) and Celery (``celery -A celery_amqp_app worker -c 2 -P
prefork``, Kombu's py-amqp transport on the same RabbitMQ, the Redis result backend). celeriac
always waits for RabbitMQ's publisher confirm; Celery is given ``confirm_publish`` so that it
does too. Every queue and exchange is named under a prefix of the run's own, deleted at the end
(``benchmarks/amqp_peers.py``).

Scenarios, each repeated ``--repeat`` times with the peers interleaved:

1. enqueue: ``N`` no-op calls from one client, one ``delay()`` each (tasks/s); the same ``N``
   as one ``group(...)`` publish; for celeriac also one ``publish_many`` of ``N`` messages
   built beforehand (the broker's share of the group publish). The queue is purged after each.
2. throughput: ``N`` no-op tasks queued first; then the worker starts. Tasks/s from the start
   command to the last stored result, and CPU per task over the same span: the worker's main
   process and children, the Redis server, and the RabbitMQ server (its ``beam.smp``).
3. latency: ``--calls`` sequential ``delay(x).get()`` against a warm worker, after ``--warmup``
   calls (p50, p99); then its idle memory.
4. sleepers: 2,000 tasks that sleep 10 ms, sent as one group to the warm worker; tasks/s from
   the first publish to the last result (the ideal is 200/s).

``N`` is 10,000 unless ``--tasks`` says otherwise.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import amqp_peers, cpu
from benchmarks.amqp_peers import CLIENTS, RunNames, Target
from benchmarks.common import (
    BenchmarkError,
    Report,
    Row,
    RunOptions,
    percentile,
    pss_kib,
    wait_until,
)
from benchmarks.redis_suite import Database, Samples, _round_trip

PEERS = ("celeriac", "celery")
DEFAULT_TASKS = 10_000
SLEEPERS, SLEEP = 2_000, 0.01
POLL_INTERVAL = 0.02
START_TIMEOUT = 60.0
CALL_TIMEOUT = 10.0
RABBIT_ROW = "  CPU per task: RabbitMQ server (µs, lower is better)"
ALL_ROW = "  CPU per task: all together, RabbitMQ included (µs, lower is better)"


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Run:
    """What every scenario needs: where the peers work, the Redis db, RabbitMQ's process."""

    target: Target
    db: Database
    rabbit_pid: int | None

    def client(self, peer: str) -> Any:
        """A fresh client of ``peer`` on this run's names."""
        return CLIENTS[peer](self.target)

    def settle(self, client: Any) -> None:
        """After a scenario: nothing left queued, the result db empty, connections closed."""
        try:
            client.purge()
        finally:
            client.close()
            self.db.flush()

    def rabbit_cpu(self) -> float:
        """CPU seconds the RabbitMQ server has used so far (0 when it cannot be read)."""
        return 0.0 if self.rabbit_pid is None else sum(cpu.process_cpu(self.rabbit_pid))


# -- scenarios -----------------------------------------------------------------------------------
def enqueue(peer: str, run: Run, tasks: int, *, group: bool) -> float:
    """Tasks per second for ``tasks`` confirmed no-op calls, one by one or as one group."""
    client = run.client(peer)
    try:
        started = time.perf_counter()
        client.enqueue(tasks, group=group)
        return tasks / (time.perf_counter() - started)
    finally:
        run.settle(client)


def prebuilt(run: Run, tasks: int) -> float:
    """celeriac only: one ``publish_many`` of ``tasks`` messages built beforehand (tasks/s)."""
    client = run.client("celeriac")
    try:
        return float(client.publish_prebuilt(tasks))
    finally:
        run.settle(client)


def throughput(
    peer: str, run: Run, workdir: Path, tasks: int
) -> tuple[float, cpu.CpuSample, float]:
    """Tasks per second, from the worker's start command to the last stored result; the CPU
    per task of the worker and the Redis server, and that of RabbitMQ (µs), over that span.

    Raises:
        BenchmarkError: the worker exited or did not finish in time.
    """
    client = run.client(peer)
    try:
        client.enqueue(tasks, group=True)
        with amqp_peers.worker(peer, run.target, workdir / f"amqp-{peer}-throughput.log") as w:
            redis_before, rabbit_before = cpu.RedisCpu.read(run.db.redis), run.rabbit_cpu()
            started = w.start()
            done = wait_until(
                client.finished,
                w,
                timeout=START_TIMEOUT + tasks / 50,
                interval=POLL_INTERVAL,
                what=f"storing all {tasks} results",
            )
            used = cpu.process_cpu(w.pid)  # before the worker stops: its children exit
            redis_used = cpu.RedisCpu.read(run.db.redis).since(redis_before)
            rabbit_used = run.rabbit_cpu() - rabbit_before
        sample = cpu.CpuSample.of(tasks, used, redis_used)
        return tasks / (done - started), sample, rabbit_used * cpu.MICRO / tasks
    finally:
        run.settle(client)


def warm(peer: str, run: Run, workdir: Path, options: RunOptions, samples: Samples) -> None:
    """Start-up, latency, idle memory and sleepers, on one warm worker.

    Raises:
        BenchmarkError: the worker exited, or a call failed or timed out.
    """
    client = run.client(peer)
    times: list[float] = []
    try:
        with amqp_peers.worker(peer, run.target, workdir / f"amqp-{peer}-warm.log") as w:
            w.start()
            _round_trip(client, w, -1, START_TIMEOUT)
            samples.add("startup", peer, 1000 * sum(cpu.process_cpu(w.pid)))
            for value in range(options.warmup_calls - 1):
                _round_trip(client, w, value, CALL_TIMEOUT)
            for value in range(options.calls):
                started = time.perf_counter()
                _round_trip(client, w, value, CALL_TIMEOUT)
                times.append((time.perf_counter() - started) * 1000)
            samples.add("p50", peer, percentile(times, 50))
            samples.add("p99", peer, percentile(times, 99))
            samples.add("memory", peer, pss_kib(w.tree()) / 1024)
            run.db.flush()
            started = time.perf_counter()
            client.enqueue(SLEEPERS, group=True, task="nap", arg=SLEEP)
            done = wait_until(
                client.finished,
                w,
                timeout=START_TIMEOUT + SLEEPERS * SLEEP,
                interval=POLL_INTERVAL,
                what=f"{SLEEPERS} sleeping tasks",
            )
            samples.add("sleepers", peer, SLEEPERS / (done - started))
    finally:
        run.settle(client)


def repetition(run: Run, workdir: Path, options: RunOptions, tasks: int, samples: Samples) -> None:
    """Every scenario once for each peer (the order alternates between repetitions).

    Raises:
        BenchmarkError: a peer crashed, hung or answered wrongly.
    """
    number = 1 + len(samples.values.get("enqueue", {}).get(PEERS[0], []))
    for peer in PEERS if number % 2 else PEERS[::-1]:
        for key, group in (("enqueue", False), ("group", True)):
            samples.add(key, peer, enqueue(peer, run, tasks, group=group))
        if peer == "celeriac":
            samples.add("publish_many", peer, prebuilt(run, tasks))
        rate, used, rabbit = throughput(peer, run, workdir, tasks)
        samples.add("throughput", peer, rate)
        samples.add("rabbit_cpu", peer, rabbit)
        samples.cpu_per_task.setdefault(peer, []).append(used)
        warm(peer, run, workdir, options, samples)
        done = ", ".join(f"{k} {v[peer][-1]:.2f}" for k, v in samples.values.items() if peer in v)
        _progress(
            f"amqp {number}/{options.repeat} {peer}: {done}; CPU µs/task: main {used.main:.0f},"
            f" children {used.children:.0f}, Redis {used.redis or 0:.0f}, RabbitMQ {rabbit:.0f}"
        )


# -- the report ----------------------------------------------------------------------------------
ROWS = (
    ("enqueue", "enqueue, one delay() each, confirmed (tasks/s)", 0),
    ("group", "enqueue, one group publish, confirmed (tasks/s)", 0),
    ("publish_many", "  of which publish_many of prebuilt messages (tasks/s)", 0),
    ("throughput", "throughput, 2 processes, results stored (tasks/s)", 0),
    ("p50", "round trip p50 (ms, lower is better)", 2),
    ("p99", "round trip p99 (ms, lower is better)", 2),
    ("sleepers", f"{SLEEPERS} tasks of {SLEEP * 1000:.0f} ms (tasks/s, ideal 200)", 1),
    ("memory", "idle memory, PSS of worker tree (MiB, lower is better)", 1),
    ("startup", "worker start-up to its first result, CPU of tree (ms)", 0),
)


def cpu_rows(samples: Samples) -> list[Row]:
    """``cpu.rows`` (worker, Redis), with RabbitMQ's CPU per task and the sum of all four
    inserted after its "all together" row."""
    rows = cpu.rows(samples.cpu_per_task)
    rabbit = samples.values.get("rabbit_cpu", {})
    total = {
        peer: [s.total + r for s, r in zip(runs, rabbit.get(peer, []), strict=False)]
        for peer, runs in samples.cpu_per_task.items()
    }
    at = next((i + 1 for i, row in enumerate(rows) if "all together" in row.scenario), len(rows))
    return [*rows[:at], Row(RABBIT_ROW, rabbit), Row(ALL_ROW, total), *rows[at:]]


def rows(samples: Samples) -> list[Row]:
    """One row per scenario, a column per peer, the CPU rows right under the throughput."""
    result = []
    for key, label, digits in ROWS:
        result.append(Row(label, samples.values.get(key, {}), digits))
        if key == "throughput":
            result += cpu_rows(samples)
    return result


def _settings(options: RunOptions, tasks: int, run: Run, load: str) -> list[str]:
    names, target = run.target.names, run.target
    rabbit = f"beam.smp pid {run.rabbit_pid}" if run.rabbit_pid else "not readable here: 0"
    return [
        f"rabbitmq: {target.amqp} (the same server for both peers), names under the run's"
        f" prefix {names.prefix} (deleted afterwards); load average before: {load}",
        f"redis:   {target.redis} (results of both peers; flushed after every run)",
        f"setup:   {amqp_peers.WORKERS} worker processes per peer, results stored, peers"
        f" interleaved, repetitions: {options.repeat}; N = {tasks}",
        f"celeriac: {' '.join(amqp_peers.worker_command('celeriac', names)[1:])} (every publish"
        " waits for RabbitMQ's confirm; namespace = the prefix)",
        f"celery:   {' '.join(amqp_peers.worker_command('celery', names)[1:])} (py-amqp"
        " transport, Redis result backend; broker_transport_options={'confirm_publish': True}"
        " so that it waits for confirms too, task_default_queue = prefix + 'celery';"
        " otherwise Celery's defaults)",
        "throughput: N no-op tasks queued first (one group); timed from the worker start"
        f" command to the last stored result (polled every {POLL_INTERVAL * 1000:.0f} ms)",
        "CPU per task: over the throughput run, start-up included; main process and children"
        " from /proc; Redis: INFO cpu of the whole server (shared) and INFO commandstats;"
        f" RabbitMQ: utime+stime of its server process ({rabbit}; the whole server, shared)",
        f"round trips: {options.calls} sequential delay(x).get() after {options.warmup_calls}"
        " warm-up calls; sleepers: sent as one group to the warm worker",
    ]


def _rabbitmq_version(url: str) -> str:
    """The server's version, which also checks it can be reached.

    Raises:
        BenchmarkError: RabbitMQ cannot be reached.
    """
    try:
        with amqp_peers.connection(url) as conn:
            version = conn.server_properties.get("version", "?")
    except Exception as exc:
        raise BenchmarkError(f"RabbitMQ at {url} cannot be reached: {exc}") from exc
    return version.decode() if isinstance(version, bytes) else str(version)


def run(options: RunOptions, workdir: Path) -> Report:
    """Run every scenario for every peer; see the module docstring.

    Raises:
        BenchmarkError: RabbitMQ or Redis is unreachable, Redis is not empty, or a peer
            crashed, hung or answered wrongly.
    """
    amqp_url = os.environ.get(amqp_peers.AMQP_ENV, amqp_peers.DEFAULT_AMQP_URL)
    redis_url = os.environ.get(amqp_peers.REDIS_ENV, amqp_peers.DEFAULT_REDIS_URL)
    tasks = options.tasks if options.tasks != RunOptions.tasks else DEFAULT_TASKS
    rabbitmq = _rabbitmq_version(amqp_url)
    db = Database(redis_url)
    db.check_empty()
    names = RunNames.new()
    session = Run(Target(amqp_url, redis_url, names), db, amqp_peers.rabbitmq_pid(amqp_url))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    samples = Samples()
    try:
        for _ in range(options.repeat):
            repetition(session, workdir, options, tasks, samples)
    finally:
        db.flush()
        tried = names.delete(amqp_url)
        _progress(
            f"amqp: deleted the run's queues and exchanges ({tried} names under {names.prefix})"
        )
    versions = {name: metadata.version(name) for name in ("celeriac", "celery", "kombu", "amqp")}
    versions["RabbitMQ"] = rabbitmq
    return Report(
        title="AMQP: celeriac vs Celery 5 (same RabbitMQ, results in Redis)",
        peers=PEERS,
        versions=versions,
        settings=_settings(options, tasks, session, load),
        rows=rows(samples),
    )
