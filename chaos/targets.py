"""The brokers a chaos run tests: its own redis-server, a Redis the user names, SQLite files.

A target gives each scenario a fresh namespace (a key prefix on Redis, a file on SQLite), so
results and dead letters of one scenario never meet another's, and says which faults it can
cause: only a server the run started itself may be killed; SQLite has no server, but a
connection holding its write lock stalls every worker as a frozen server would.
"""

from __future__ import annotations

import abc
import contextlib
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chaos.redis_server import RedisServer

RESTART, FREEZE = "restart the broker", "freeze the broker"


@dataclass(frozen=True)
class Namespace:
    """Where one scenario's messages and results live."""

    broker_url: str
    keyprefix: str = ""


class Target(abc.ABC):
    """A broker to run scenarios on."""

    kind: str = ""

    @abc.abstractmethod
    def describe(self) -> str:
        """One line for the report's header."""

    @abc.abstractmethod
    def namespace(self, scenario: str) -> Namespace:
        """A fresh, empty namespace for ``scenario``."""

    def cannot(self, fault: str) -> str | None:
        """Why this target cannot cause ``fault`` (None when it can)."""
        return f"{self.kind}: cannot {fault}"

    def restart(self, down: float) -> None:
        """Kill the broker, leave it down ``down`` seconds, start it again (only where
        ``cannot(RESTART)`` is None)."""
        raise NotImplementedError(RESTART)

    def frozen(self, namespace: Namespace) -> contextlib.AbstractContextManager[None]:
        """A block during which the broker answers nothing (where ``cannot(FREEZE)`` is None)."""
        raise NotImplementedError(FREEZE)

    def discard(self, namespace: Namespace) -> None:
        """Delete what a finished scenario left in ``namespace``."""

    def close(self) -> None:
        """Stop what the target started."""


def _delete_prefix(url: str, prefix: str) -> None:
    import redis  # the dev extra; only Redis targets need it

    client = redis.Redis.from_url(url)
    try:
        for keys in _chunks(client.scan_iter(match=f"{prefix}*", count=1000), 500):
            client.unlink(*keys)
    finally:
        client.close()


def _chunks(items: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class OwnRedis(Target):
    """A throw-away ``redis-server`` (AOF, fsync always) that the run may kill and freeze."""

    kind = "redis"

    def __init__(self, directory: Path) -> None:
        self.server = RedisServer(directory).start()

    def describe(self) -> str:
        return (
            f"redis: own redis-server {self.server.version()} at {self.server.url}"
            " (appendonly yes, appendfsync always)"
        )

    def namespace(self, scenario: str) -> Namespace:
        return Namespace(self.server.url, f"chaos:{scenario}:{uuid.uuid4().hex[:8]}:")

    def cannot(self, fault: str) -> str | None:
        return None

    def restart(self, down: float) -> None:
        self.server.kill()
        time.sleep(down)
        self.server.start()

    @contextlib.contextmanager
    def frozen(self, namespace: Namespace) -> Iterator[None]:
        self.server.freeze()
        try:
            yield
        finally:
            self.server.thaw()

    def discard(self, namespace: Namespace) -> None:
        _delete_prefix(namespace.broker_url, namespace.keyprefix)

    def close(self) -> None:
        self.server.close()


class UserRedis(Target):
    """The user's Redis (``--redis-url``): keys under a prefix of the run, deleted afterwards;
    never killed or frozen."""

    kind = "redis"

    def __init__(self, url: str) -> None:
        self.url = url
        self.run = uuid.uuid4().hex[:8]

    def describe(self) -> str:
        from celeriac.urls import mask_url

        return f"redis: {mask_url(self.url)} (yours: keys under chaos:<scenario>:{self.run}:)"

    def namespace(self, scenario: str) -> Namespace:
        return Namespace(self.url, f"chaos:{scenario}:{self.run}:")

    def cannot(self, fault: str) -> str | None:
        return f"needs a redis-server of its own to {fault.split()[0]} (not with --redis-url)"

    def discard(self, namespace: Namespace) -> None:
        _delete_prefix(namespace.broker_url, namespace.keyprefix)


class SqliteFiles(Target):
    """One SQLite file per scenario in ``directory``; frozen by holding its write lock."""

    kind = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return f"sqlite: SQLite {sqlite3.sqlite_version}, one file per scenario in {self.directory}"

    def namespace(self, scenario: str) -> Namespace:
        return Namespace(f"sqlite:///{self.directory / f'{scenario}.db'}")

    def cannot(self, fault: str) -> str | None:
        if fault == FREEZE:
            return None
        return "sqlite: no server to restart (the file outlives every process)"

    @contextlib.contextmanager
    def frozen(self, namespace: Namespace) -> Iterator[None]:
        path = namespace.broker_url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN IMMEDIATE")  # every write of every process now waits
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            conn.close()

    def discard(self, namespace: Namespace) -> None:
        path = Path(namespace.broker_url.removeprefix("sqlite:///"))
        for leftover in (
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-shm"),
        ):
            leftover.unlink(missing_ok=True)
