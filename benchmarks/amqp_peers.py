"""The AMQP suite's peers: the RabbitMQ names a run owns, and each peer's client and worker.

RabbitMQ on the machine is shared (the test suite uses it too) and the bench has no vhost of its
own, so every run names everything it declares under one prefix, ``bench-<12 hex>-``: celeriac's
``namespace`` transport option, Celery's ``task_default_queue`` (and so its exchange) and its
worker's node name (and so its pidbox queue). ``RunNames.delete`` removes them at the end: the
names the two peers are known to declare, plus any other queue or exchange with the prefix that
``rabbitmqctl`` lists (when it can be run). Nothing outside the prefix is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import APPS_DIR, WorkerProcess
from benchmarks.redis_suite import _import_app

AMQP_ENV, REDIS_ENV = "BENCH_AMQP_URL", "BENCH_REDIS_URL"
PREFIX_ENV, QUEUE_ENV = "BENCH_AMQP_PREFIX", "BENCH_AMQP_QUEUE"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
WORKERS = 2
CHUNK = 1000  # result keys checked per EXISTS
BIN = Path(sys.executable).parent
_TWO = ("-c", str(WORKERS), "-P", "prefork", "-l", "warning")


@dataclass(frozen=True)
class RunNames:
    """Every RabbitMQ name of one benchmark run starts with ``prefix``."""

    prefix: str
    host: str

    @classmethod
    def new(cls) -> RunNames:
        """Names no other run uses."""
        return cls(f"bench-{uuid.uuid4().hex[:12]}-", socket.gethostname())

    @property
    def celery_queue(self) -> str:
        """Celery's ``task_default_queue``; its default exchange takes the same name."""
        return f"{self.prefix}celery"

    @property
    def celery_node(self) -> str:
        """The Celery worker's node name (``-n``): its pidbox queue is named after it."""
        return f"{self.prefix}celery@{self.host}"

    def known(self) -> set[tuple[str, str]]:
        """("queue" or "exchange", name) of everything the two peers declare in a run."""
        from celeriac.brokers.amqp_link import AmqpOptions
        from celeriac.brokers.amqp_topology import Topology

        names = Topology(AmqpOptions(namespace=self.prefix), instance="-")
        queues = {names.queue("celeriac"), names.dead, names.broadcasts}
        queues |= {self.celery_queue, f"{self.celery_node}.celery.pidbox"}
        exchanges = {names.delivery, self.celery_queue}
        levels = {names.level(n) for n in names.levels()}  # a queue and an exchange each
        return {("queue", q) for q in queues | levels} | {
            ("exchange", e) for e in exchanges | levels
        }

    def delete(self, url: str) -> int:
        """Delete this run's queues and exchanges; return how many names were tried.

        Raises:
            OSError, amqp.exceptions.AMQPError: RabbitMQ cannot be reached.
        """
        names = self.known() | {(kind, n) for kind, n in listed(url) if n.startswith(self.prefix)}
        with connection(url) as conn:
            channel = conn.channel()
            for kind, name in sorted(names):
                if not channel.is_open:  # an error closes the channel: carry on with a new one
                    channel = conn.channel()
                with contextlib.suppress(Exception):
                    if kind == "queue":
                        channel.queue_delete(name)
                    else:
                        channel.exchange_delete(name)
        return len(names)


@contextlib.contextmanager
def connection(url: str) -> Any:
    """A py-amqp connection to the RabbitMQ at ``url`` (closed afterwards).

    Raises:
        OSError, amqp.exceptions.AMQPError: RabbitMQ cannot be reached or refused the login.
    """
    from celeriac.brokers.amqp_link import Address, amqp

    a = Address.parse(url)
    conn = amqp.Connection(
        f"{a.host}:{a.port}",
        userid=a.userid,
        password=a.password,
        virtual_host=a.vhost,
        connect_timeout=5,
    )
    conn.connect()
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def listed(url: str) -> list[tuple[str, str]]:
    """Every queue and exchange of the URL's vhost, as ``rabbitmqctl`` lists them; nothing when
    it cannot be run here (another machine's server, no permission)."""
    from celeriac.brokers.amqp_link import Address

    command = shutil.which("rabbitmqctl")
    if command is None:
        return []
    vhost = Address.parse(url).vhost
    found = []
    for kind, what in (("queue", "list_queues"), ("exchange", "list_exchanges")):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            listed = subprocess.run(
                [command, "-q", "--no-table-headers", what, "-p", vhost, "name"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout.split()
            found += [(kind, name) for name in listed]
    return found


def rabbitmq_pid(url: str) -> int | None:
    """The RabbitMQ server's process (``beam.smp`` running ``rabbit``), when it is on this
    machine and its ``/proc`` entry is readable; else None."""
    from celeriac.brokers.amqp_link import Address

    if Address.parse(url).host not in ("127.0.0.1", "localhost", "::1"):
        return None
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if (
                entry.name.isdigit()
                and (entry / "comm").read_text().strip() == "beam.smp"
                and b"rabbit" in (entry / "cmdline").read_bytes()
            ):
                return int(entry.name)
    return None


def all_stored(redis: Any, keys: Sequence[str]) -> bool:
    """Whether every key exists: the last one first (tasks finish about in order, so this one
    ``EXISTS`` says no while most of them run), then all, ``CHUNK`` at a time."""
    if not keys:
        return True
    if not redis.exists(keys[-1]):
        return False
    present = sum(int(redis.exists(*keys[i : i + CHUNK])) for i in range(0, len(keys), CHUNK))
    return present == len(keys)


@dataclass(frozen=True)
class Target:
    """Where a run's peers work: RabbitMQ, the Redis result database, the run's names."""

    amqp: str
    redis: str
    names: RunNames

    def env(self) -> dict[str, str]:
        """What the task modules in ``benchmarks/apps`` read."""
        return {
            AMQP_ENV: self.amqp,
            REDIS_ENV: self.redis,
            PREFIX_ENV: self.names.prefix,
            QUEUE_ENV: self.names.celery_queue,
        }


class CeleriacClient:
    """celeriac through its public API; done when every task's result key exists."""

    name = "celeriac"

    def __init__(self, target: Target) -> None:
        import redis

        from celeriac import group
        from celeriac._redis.keys import BackendKeys

        self.group = group
        module = _import_app("celeriac_amqp_app")
        self.app = module.create(target.amqp, target.redis, target.names.prefix)
        self.redis = redis.Redis.from_url(target.redis)
        self.keys = BackendKeys()
        self.ids: list[str] = []

    def enqueue(self, count: int, *, group: bool, task: str = "noop", arg: Any = None) -> None:
        """Send ``count`` calls of ``task``, each publish confirmed by RabbitMQ."""
        call = self.app.tasks[f"celeriac_amqp_app.{task}"]
        args = () if arg is None else (arg,)
        if group:
            result = self.group(call.s(*args) for _ in range(count)).apply_async()
            self.ids += [r.id for r in result.results]
        else:
            self.ids += [call.delay(*args).id for _ in range(count)]

    def publish_prebuilt(self, count: int) -> float:
        """Tasks/s of one ``broker.publish_many`` of ``count`` messages built beforehand (the
        broker's share of a group publish)."""
        noop = self.app.tasks["celeriac_amqp_app.noop"]
        defaults = noop.message_defaults()
        messages = [
            self.app.sender.message(noop.name, (), {}, {}, task_defaults=defaults)
            for _ in range(count)
        ]
        started = time.perf_counter()
        self.app.broker.publish_many(messages)
        return count / (time.perf_counter() - started)

    def finished(self) -> bool:
        """Every result sent so far is stored."""
        return all_stored(self.redis, [self.keys.result(task_id) for task_id in self.ids])

    def round_trip(self, value: int, timeout: float) -> Any:
        """``echo.delay(value).get()``: the publish (confirmed), then a BLPOP woken by the store."""
        return self.app.tasks["celeriac_amqp_app.echo"].delay(value).get(timeout=timeout)

    def purge(self) -> None:
        """Drop what is still queued (an enqueue scenario's messages, a failed run's)."""
        self.app.broker.purge(["celeriac"])

    def close(self) -> None:
        """Close connections."""
        self.redis.close()
        self.app.close()


class CeleryClient:
    """Celery through its public API; done when every task's result key exists."""

    name = "celery"

    def __init__(self, target: Target) -> None:
        import redis
        from celery import group

        self.group = group
        module = _import_app("celery_amqp_app")
        self.app = module.create(target.amqp, target.redis, target.names.celery_queue)
        self.redis = redis.Redis.from_url(target.redis)
        self.ids: list[str] = []

    def enqueue(self, count: int, *, group: bool, task: str = "noop", arg: Any = None) -> None:
        """Send ``count`` calls of ``task`` (``confirm_publish``: each waits for its confirm)."""
        call = self.app.tasks[f"celery_amqp_app.{task}"]
        args = () if arg is None else (arg,)
        if group:
            result = self.group(call.s(*args) for _ in range(count)).apply_async()
            self.ids += [r.id for r in result.results]
        else:
            self.ids += [call.delay(*args).id for _ in range(count)]

    def finished(self) -> bool:
        """Every result sent so far is stored."""
        return all_stored(self.redis, [f"celery-task-meta-{task_id}" for task_id in self.ids])

    def round_trip(self, value: int, timeout: float) -> Any:
        """``echo.delay(value).get()`` (Celery's Redis backend waits on pub/sub)."""
        return self.app.tasks["celery_amqp_app.echo"].delay(value).get(timeout=timeout)

    def purge(self) -> None:
        """Drop what is still queued in the run's Celery queue."""
        self.app.control.purge()

    def close(self) -> None:
        """Close connections."""
        self.redis.close()
        self.app.close()


def worker_command(peer: str, names: RunNames) -> list[str]:
    """The peer's worker command: 2 prefork processes (Celery: named for its pidbox queue)."""
    if peer == "celeriac":
        return [str(BIN / "celeriac"), "-A", "celeriac_amqp_app", "worker", *_TWO]
    return [str(BIN / "celery"), "-A", "celery_amqp_app", "worker", *_TWO, "-n", names.celery_node]


def worker(peer: str, target: Target, log: Path) -> WorkerProcess:
    """The peer's worker process on ``target`` (not started), logging to ``log``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APPS_DIR), env.get("PYTHONPATH")]))
    env.update(target.env())
    return WorkerProcess(peer, worker_command(peer, target.names), env=env, log_path=log)


CLIENTS: dict[str, type[CeleriacClient] | type[CeleryClient]] = {
    "celeriac": CeleriacClient,
    "celery": CeleryClient,
}
