"""The Huey side's tasks: the worker runs ``huey_consumer huey_app.huey`` in this folder.

The worker's instance uses the SQLite file named by ``$BENCH_HUEY_DB``. The benchmark process
imports this module by the same name (Huey names a task after its function's module) and builds
one instance per database file with ``create``.

Durability is a parameter: ``NORMAL`` is celeriac's (WAL, no fsync per commit; a committed
task survives a process crash, not a power cut), ``FULL`` is SqliteHuey's own default (an fsync
per commit). The benchmark runs Huey both ways, as two peers. The worker reads the level from
``$BENCH_HUEY_SYNCHRONOUS``.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Any

from huey import SqliteHuey
from huey.storage import SqliteStorage

DB_ENV = "BENCH_HUEY_DB"
SYNCHRONOUS_ENV = "BENCH_HUEY_SYNCHRONOUS"


def storage_class(level: str) -> type[SqliteStorage]:
    """SqliteStorage whose connections use ``PRAGMA synchronous = level``."""
    level = level.upper()
    if level not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {level}")

    class DurabilityStorage(SqliteStorage):  # type: ignore[misc]
        def _create_connection(self) -> sqlite3.Connection:
            conn: sqlite3.Connection = super()._create_connection()
            conn.execute(f"PRAGMA synchronous = {level}")
            return conn

    return DurabilityStorage


def noop() -> None:
    """Do nothing (the result, None, is still stored: ``store_none=True``)."""


def echo(value: int) -> int:
    """Return the argument, so a round trip can be checked."""
    return value


@dataclass(frozen=True)
class Bench:
    """A Huey instance and its two tasks."""

    huey: SqliteHuey
    noop: Any
    echo: Any


def create(filename: str, synchronous: str = "NORMAL") -> Bench:
    """A SqliteHuey on ``filename`` that stores every result, None included, as celeriac does."""
    instance = SqliteHuey(
        "bench", filename=filename, store_none=True, storage_class=storage_class(synchronous)
    )
    return Bench(instance, instance.task()(noop), instance.task()(echo))


# An in-memory database when unset, so that importing this module never creates a file.
huey = create(os.environ.get(DB_ENV, ":memory:"), os.environ.get(SYNCHRONOUS_ENV, "NORMAL")).huey
