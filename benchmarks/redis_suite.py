"""The Redis suite: celeriac against Celery 5 and Huey 3, every peer on the same Redis.

Each peer runs its own worker command with 2 worker processes and stores every result:
celeriac (``celeriac -A celeriac_redis_app worker -c 2 -P prefork``), Celery (``celery -A
celery_redis_app worker -c 2 -P prefork``, Redis broker and Redis result backend, otherwise
Celery's defaults) and Huey (``huey_consumer huey_redis_app.huey -k process -w 2``, a RedisHuey).
A fourth column, ``celeriac-nohistory``, runs the throughput scenario only, with the same worker
and ``task_history = False``: the ratio celeriac/celeriac-nohistory is what recording every
task's events and history costs.
They all use the Redis database at ``$BENCH_REDIS_URL`` (default: db 12 of the shared server on
127.0.0.1:6379), which must be empty at the start; it is flushed after every run and at the end.

Scenarios, each repeated ``--repeat`` times with the peers interleaved:

1. enqueue: ``N`` no-op calls from one client, one ``delay()`` each (tasks/s); and the same ``N``
   through one ``group(...)`` publish (celeriac: one ``publish_many``; Celery: ``group``; Huey
   has no group). For celeriac also the ``publish_many`` alone, of ``N`` messages built
   beforehand: the broker's share of a group publish.
2. throughput: ``N`` no-op tasks queued first; then the worker starts. Tasks/s from the start
   command to the last stored result; and CPU per task over the same span (``benchmarks/cpu.py``):
   the worker's main process, its children, the Redis server (``INFO cpu``) and the commands it
   spent the most time executing (``INFO commandstats``).
3. latency: ``--calls`` sequential ``delay(x).get()`` against a warm worker, after ``--warmup``
   calls (p50, p99). Huey uses its notifying result wait (``notify_result=True``).
4. sleepers: 2,000 tasks that sleep 10 ms, sent as one group to the warm worker; tasks/s from
   the first publish to the last result (the ideal is 200/s).
5. idle memory: PSS of the worker's whole process tree after the round trips.

``N`` is 20,000 unless ``--tasks`` says otherwise.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from benchmarks import cpu
from benchmarks.common import (
    APPS_DIR,
    BenchmarkError,
    Report,
    Row,
    RunOptions,
    WorkerProcess,
    percentile,
    pss_kib,
    wait_until,
)

if TYPE_CHECKING:
    from celeriac import Celeriac

URL_ENV = "BENCH_REDIS_URL"
DEFAULT_URL = "redis://127.0.0.1:6379/12"
WORKERS = 2
DEFAULT_TASKS = 20_000
SLEEPERS, SLEEP = 2_000, 0.01
POLL_INTERVAL = 0.02
START_TIMEOUT = 60.0
CALL_TIMEOUT = 10.0
BIN = Path(sys.executable).parent

_TWO = ("-c", str(WORKERS), "-P", "prefork", "-l", "warning")
COMMANDS = {
    "celeriac": [str(BIN / "celeriac"), "-A", "celeriac_redis_app", "worker", *_TWO],
    # the same worker with task_history = False: what recording each task's history costs
    "celeriac-nohistory": [
        str(BIN / "celeriac"),
        "-A",
        "celeriac_redis_nohistory_app",
        "worker",
        *_TWO,
    ],
    "celery": [str(BIN / "celery"), "-A", "celery_redis_app", "worker", *_TWO],
    "huey": [str(BIN / "huey_consumer"), "huey_redis_app.huey", "-k", "process", "-w", "2", "-q"],
}


def _import_app(name: str) -> ModuleType:
    """The task module ``name`` from ``benchmarks/apps``, under the name its worker uses."""
    if str(APPS_DIR) not in sys.path:
        sys.path.insert(0, str(APPS_DIR))
    return importlib.import_module(name)


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Client(Protocol):
    """The benchmark process's side of one peer."""

    def enqueue(self, count: int, *, group: bool, task: str = "noop", arg: Any = None) -> None:
        """Send ``count`` calls, one by one or as one group."""

    def finished(self, count: int) -> bool:
        """Whether the results of all ``count`` calls sent so far are stored."""

    def round_trip(self, value: int, timeout: float) -> Any:
        """``echo.delay(value).get(timeout=...)``."""

    def close(self) -> None:
        """Close connections."""


class CeleriacClient:
    """celeriac through its public API; done when its queue is empty (results are stored in the
    same atomic step that acknowledges their messages)."""

    can_group = True

    def __init__(self, url: str) -> None:
        from celeriac import group

        self.group = group
        module = _import_app("celeriac_redis_app")  # its app reads $BENCH_REDIS_URL, set by run()
        self.app: Celeriac = module.app if module.app.conf.broker_url == url else module.create(url)

    def enqueue(self, count: int, *, group: bool, task: str = "noop", arg: Any = None) -> None:
        """Send ``count`` calls of ``task``."""
        call = self.app.tasks[f"celeriac_redis_app.{task}"]
        args = () if arg is None else (arg,)
        if group:
            self.group(call.s(*args) for _ in range(count)).apply_async()
        else:
            for _ in range(count):
                call.delay(*args)

    def publish_prebuilt(self, count: int) -> float:
        """Tasks/s of one ``broker.publish_many`` of ``count`` messages built beforehand: what
        the broker itself costs in a group publish (building the messages is the rest)."""
        noop = self.app.tasks["celeriac_redis_app.noop"]
        defaults = noop.message_defaults()
        messages = [
            self.app.sender.message(noop.name, (), {}, {}, task_defaults=defaults)
            for _ in range(count)
        ]
        started = time.perf_counter()
        self.app.broker.publish_many(messages)
        return count / (time.perf_counter() - started)

    def finished(self, count: int) -> bool:
        """Nothing left in the queue: every message acked, so every result stored."""
        return self.app.broker.queue_lengths(["celeriac"])["celeriac"] == 0

    def round_trip(self, value: int, timeout: float) -> Any:
        """``echo.delay(value).get()``: one write and a BLPOP woken by the store."""
        return self.app.tasks["celeriac_redis_app.echo"].delay(value).get(timeout=timeout)

    def close(self) -> None:
        """Close the app's connections."""
        self.app.close()


class CeleryClient:
    """Celery through its public API; results counted by their keys."""

    can_group = True

    def __init__(self, url: str) -> None:
        import redis
        from celery import group

        self.group = group
        module = _import_app("celery_redis_app")  # its app reads $BENCH_REDIS_URL, set by run()
        self.app = module.app if module.app.conf.broker_url == url else module.create(url)
        self.redis = redis.Redis.from_url(url)
        self.ids: list[str] = []

    def enqueue(self, count: int, *, group: bool, task: str = "noop", arg: Any = None) -> None:
        """Send ``count`` calls of ``task``."""
        call = self.app.tasks[f"celery_redis_app.{task}"]
        args = () if arg is None else (arg,)
        if group:
            result = self.group(call.s(*args) for _ in range(count)).apply_async()
            self.ids += [r.id for r in result.results]
        else:
            self.ids += [call.delay(*args).id for _ in range(count)]

    def finished(self, count: int) -> bool:
        """Every result key exists (checked in full only once the key count says it may)."""
        if self.redis.dbsize() < len(self.ids):
            return False
        keys = [f"celery-task-meta-{task_id}" for task_id in self.ids]
        present = sum(
            int(self.redis.exists(*keys[i : i + 1000])) for i in range(0, len(keys), 1000)
        )
        return present == len(keys)

    def round_trip(self, value: int, timeout: float) -> Any:
        """``echo.delay(value).get()`` (Celery's Redis backend waits on pub/sub)."""
        return self.app.tasks["celery_redis_app.echo"].delay(value).get(timeout=timeout)

    def close(self) -> None:
        """Close connections."""
        self.redis.close()
        self.app.close()


class HueyClient:
    """Huey through its public API; results counted in Huey's result hash."""

    can_group = False

    def __init__(self, url: str, *, notify: bool = False) -> None:
        self.bench = _import_app("huey_redis_app").create(url, notify=notify)

    def enqueue(self, count: int, *, group: bool, task: str = "noop", arg: Any = None) -> None:
        """Send ``count`` calls of ``task`` (Huey has no group: one by one either way)."""
        call = getattr(self.bench, task)
        args = () if arg is None else (arg,)
        for _ in range(count):
            call(*args)

    def finished(self, count: int) -> bool:
        """``HLEN`` of Huey's result hash."""
        storage = self.bench.huey.storage
        return int(storage.conn.hlen(storage.result_key)) >= count

    def round_trip(self, value: int, timeout: float) -> Any:
        """``echo(value).get(blocking=True)``: with ``notify_result``, a BLPOP."""
        return self.bench.echo(value).get(blocking=True, timeout=timeout)

    def close(self) -> None:
        """Close the storage connection pool."""
        self.bench.huey.storage.pool.disconnect()


@dataclass(frozen=True)
class Peer:
    """How to start one peer's worker and talk to it."""

    name: str
    client: Callable[..., Any]
    throughput_only: bool = False  # a variant of celeriac, run in the throughput scenario only

    def worker(self, url: str, log: Path, **env: str) -> WorkerProcess:
        """The peer's worker command on ``url``, logging to ``log``."""
        full = dict(os.environ)
        full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APPS_DIR), full.get("PYTHONPATH")]))
        full[URL_ENV] = url
        full.update(env)
        return WorkerProcess(self.name, COMMANDS[self.name], env=full, log_path=log)


PEERS = (
    Peer("celeriac", CeleriacClient),
    Peer("celery", CeleryClient),
    Peer("huey", HueyClient),
    Peer("celeriac-nohistory", CeleriacClient, throughput_only=True),
)


class Database:
    """The Redis database the suite owns: checked empty first, flushed after every run."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.redis = redis.Redis.from_url(url)

    def check_empty(self) -> None:
        """Raises: BenchmarkError: the database holds keys (someone else's?)."""
        try:
            size = self.redis.dbsize()
        except Exception as exc:
            raise BenchmarkError(f"Redis at {self.url} cannot be reached: {exc}") from exc
        if size:
            raise BenchmarkError(
                f"Redis database {self.url} holds {size} keys: it must be empty (set ${URL_ENV})"
            )

    def flush(self) -> None:
        """Delete every key of this database (only ours: it was empty at the start)."""
        self.redis.flushdb()


@dataclass
class Samples:
    """Every measurement, per scenario and peer; the throughput runs' CPU per peer."""

    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    cpu_per_task: dict[str, list[cpu.CpuSample]] = field(default_factory=dict)

    def add(self, scenario: str, peer: str, value: float) -> None:
        """Record one sample."""
        self.values.setdefault(scenario, {}).setdefault(peer, []).append(value)


# -- scenarios -----------------------------------------------------------------------------------
def enqueue(peer: Peer, db: Database, tasks: int, *, group: bool) -> float | None:
    """Tasks per second for ``tasks`` no-op calls, one by one or as one group."""
    client = peer.client(db.url)
    try:
        if group and not client.can_group:
            return None
        started = time.perf_counter()
        client.enqueue(tasks, group=group)
        return tasks / (time.perf_counter() - started)
    finally:
        client.close()
        db.flush()


def prebuilt(peer: Peer, db: Database, tasks: int) -> float:
    """celeriac only: one ``publish_many`` of ``tasks`` messages built beforehand (tasks/s)."""
    client = peer.client(db.url)
    try:
        return float(client.publish_prebuilt(tasks))
    finally:
        client.close()
        db.flush()


def throughput(peer: Peer, db: Database, workdir: Path, tasks: int) -> tuple[float, cpu.CpuSample]:
    """Tasks per second, from the worker's start command to the last stored result, and the
    CPU per task that the worker and the Redis server spent over the same span.

    Raises:
        BenchmarkError: the worker exited or did not finish in time.
    """
    client = peer.client(db.url)
    try:
        client.enqueue(tasks, group=client.can_group)
        with peer.worker(db.url, workdir / f"{peer.name}-throughput.log") as worker:
            before = cpu.RedisCpu.read(db.redis)
            started = worker.start()
            done = wait_until(
                lambda: client.finished(tasks),
                worker,
                timeout=START_TIMEOUT + tasks / 50,
                interval=POLL_INTERVAL,
                what=f"storing all {tasks} results",
            )
            used = cpu.process_cpu(worker.pid)  # before the worker stops: its children exit
            redis_used = cpu.RedisCpu.read(db.redis).since(before)
        return tasks / (done - started), cpu.CpuSample.of(tasks, used, redis_used)
    finally:
        client.close()
        db.flush()


def _round_trip(client: Any, worker: WorkerProcess, value: int, timeout: float) -> None:
    try:
        answer = client.round_trip(value, timeout)
    except Exception as exc:
        worker.check()
        raise BenchmarkError(
            f"{worker.name}: echo({value}) failed: {type(exc).__name__}: {exc}\n{worker.log_tail()}"
        ) from exc
    if answer != value:
        raise BenchmarkError(f"{worker.name}: echo({value}) returned {answer!r}")


def warm(peer: Peer, db: Database, workdir: Path, options: RunOptions, samples: Samples) -> None:
    """Latency, sleepers and idle memory, on one warm worker.

    Raises:
        BenchmarkError: the worker exited, or a call failed or timed out.
    """
    notify = {"BENCH_HUEY_NOTIFY": "1"} if peer.name == "huey" else {}
    client = peer.client(db.url, notify=True) if peer.name == "huey" else peer.client(db.url)
    times: list[float] = []
    try:
        with peer.worker(db.url, workdir / f"{peer.name}-warm.log", **notify) as worker:
            worker.start()
            _round_trip(client, worker, -1, START_TIMEOUT)
            samples.add("startup", peer.name, 1000 * sum(cpu.process_cpu(worker.pid)))
            for value in range(options.warmup_calls - 1):
                _round_trip(client, worker, value, CALL_TIMEOUT)
            for value in range(options.calls):
                started = time.perf_counter()
                _round_trip(client, worker, value, CALL_TIMEOUT)
                times.append((time.perf_counter() - started) * 1000)
            samples.add("p50", peer.name, percentile(times, 50))
            samples.add("p99", peer.name, percentile(times, 99))
            samples.add("memory", peer.name, pss_kib(worker.tree()) / 1024)
            db.flush()
            started = time.perf_counter()
            client.enqueue(SLEEPERS, group=client.can_group, task="nap", arg=SLEEP)
            done = wait_until(
                lambda: client.finished(SLEEPERS),
                worker,
                timeout=START_TIMEOUT + SLEEPERS * SLEEP,
                interval=POLL_INTERVAL,
                what=f"{SLEEPERS} sleeping tasks",
            )
            samples.add("sleepers", peer.name, SLEEPERS / (done - started))
    finally:
        client.close()
        db.flush()


# -- the suite -----------------------------------------------------------------------------------
ROWS = (
    ("enqueue", "enqueue, one delay() each (tasks/s)", 0),
    ("group", "enqueue, one group publish (tasks/s)", 0),
    ("publish_many", "  of which publish_many of prebuilt messages (tasks/s)", 0),
    ("throughput", "throughput, 2 processes, results stored (tasks/s)", 0),
    ("p50", "round trip p50 (ms, lower is better)", 2),
    ("p99", "round trip p99 (ms, lower is better)", 2),
    ("sleepers", f"{SLEEPERS} tasks of {SLEEP * 1000:.0f} ms (tasks/s, ideal 200)", 1),
    ("memory", "idle memory, PSS of worker tree (MiB, lower is better)", 1),
    ("startup", "worker start-up to its first result, CPU of tree (ms)", 0),
)


def _rows(samples: Samples) -> list[Row]:
    """One row per scenario, a column per peer (ratios: celeriac / each other peer); the CPU
    per task right under the throughput it was measured with."""
    rows = []
    for key, label, digits in ROWS:
        rows.append(Row(label, samples.values.get(key, {}), digits))
        if key == "throughput":
            rows += cpu.rows(samples.cpu_per_task)
    return rows


def _settings(options: RunOptions, tasks: int, url: str, load: str) -> list[str]:
    return [
        f"redis:   {url} (the same server for every peer), load average before: {load}",
        f"setup:   {WORKERS} worker processes per peer, results stored, peers interleaved,"
        f" repetitions: {options.repeat}; N = {tasks}",
        f"celeriac: {' '.join(COMMANDS['celeriac'][1:])}",
        "celeriac-nohistory: the same worker with task_history = False (throughput only): what"
        " recording every task's events and history in Redis costs",
        f"celery:   {' '.join(COMMANDS['celery'][1:])} (Redis result backend, Celery defaults)",
        f"huey:     {' '.join(COMMANDS['huey'][1:])} (RedisHuey, store_none=True;"
        " notify_result=True for the round trips)",
        "throughput: N no-op tasks queued first; timed from the worker start command to the"
        f" last stored result (polled every {POLL_INTERVAL * 1000:.0f} ms)",
        "CPU per task: over the throughput run, start-up included (see the start-up row); main"
        " process and children from /proc (children: live descendants + reaped); Redis: INFO"
        " cpu used_cpu_sys+used_cpu_user of the whole server (this process's polling"
        " included), and INFO commandstats usec of each peer's top 3 commands",
        f"round trips: {options.calls} sequential delay(x).get() after {options.warmup_calls}"
        " warm-up calls; sleepers: sent as one group (Huey: one by one) to the warm worker",
    ]


def run(options: RunOptions, workdir: Path) -> Report:
    """Run every scenario for every peer; see the module docstring.

    Raises:
        BenchmarkError: Redis is unreachable or not empty, or a peer crashed, hung or answered
            wrongly.
    """
    url = os.environ.setdefault(URL_ENV, DEFAULT_URL)  # the workers and the apps read it
    tasks = options.tasks if options.tasks != RunOptions.tasks else DEFAULT_TASKS
    db = Database(url)
    db.check_empty()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    samples = Samples()
    try:
        for repetition in range(1, options.repeat + 1):
            order = PEERS if repetition % 2 else PEERS[::-1]
            for peer in order:
                if peer.throughput_only:
                    drained, used = throughput(peer, db, workdir, tasks)
                    samples.add("throughput", peer.name, drained)
                    samples.cpu_per_task.setdefault(peer.name, []).append(used)
                    _progress(f"redis {repetition}/{options.repeat} {peer.name}: {drained:.0f}/s")
                    continue
                for key, group in (("enqueue", False), ("group", True)):
                    rate = enqueue(peer, db, tasks, group=group)
                    if rate is not None:
                        samples.add(key, peer.name, rate)
                if peer.name == "celeriac":
                    samples.add("publish_many", peer.name, prebuilt(peer, db, tasks))
                rate, used = throughput(peer, db, workdir, tasks)
                samples.add("throughput", peer.name, rate)
                samples.cpu_per_task.setdefault(peer.name, []).append(used)
                warm(peer, db, workdir, options, samples)
                _progress(
                    f"redis {repetition}/{options.repeat} {peer.name}: "
                    + ", ".join(
                        f"{k} {v[peer.name][-1]:.2f}"
                        for k, v in samples.values.items()
                        if peer.name in v
                    )
                    + f"; CPU µs/task: main {used.main:.0f}, children {used.children:.0f},"
                    f" Redis {used.redis or 0:.0f}"
                )
    finally:
        db.flush()
    versions = {name: metadata.version(name) for name in ("celeriac", "celery", "huey", "redis")}
    return Report(
        title="Redis: celeriac vs Celery 5 and Huey 3 (same Redis)",
        peers=tuple(peer.name for peer in PEERS),
        versions=versions,
        settings=_settings(options, tasks, url, load),
        rows=_rows(samples),
    )
