"""The Huey side's tasks: the worker runs ``huey_consumer huey_app.huey`` in this folder.

The worker's instance uses the SQLite file named by ``$BENCH_HUEY_DB``. The benchmark process
imports this module by the same name (Huey names a task after its function's module) and builds
one instance per database file with ``create``.

Durability is set to celeriac's: WAL with ``synchronous = NORMAL``. SqliteHuey's own default is
SQLite's FULL (an fsync per commit), and its ``fsync=False`` means OFF; neither matches, so the
storage below sets the pragma itself. ``$BENCH_HUEY_SYNCHRONOUS=FULL`` measures Huey's default.
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


class MatchedDurabilityStorage(SqliteStorage):  # type: ignore[misc]
    """SqliteStorage whose connections use ``synchronous`` = ``$BENCH_HUEY_SYNCHRONOUS``."""

    def _create_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._create_connection()
        level = os.environ.get(SYNCHRONOUS_ENV, "NORMAL").upper()
        if level not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"${SYNCHRONOUS_ENV} must be OFF, NORMAL, FULL or EXTRA, not {level}")
        conn.execute(f"PRAGMA synchronous = {level}")
        return conn


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


def create(filename: str) -> Bench:
    """A SqliteHuey on ``filename`` that stores every result, None included, as celeriac does."""
    instance = SqliteHuey(
        "bench", filename=filename, store_none=True, storage_class=MatchedDurabilityStorage
    )
    return Bench(instance, instance.task()(noop), instance.task()(echo))


# An in-memory database when unset, so that importing this module never creates a file.
huey = create(os.environ.get(DB_ENV, ":memory:")).huey
