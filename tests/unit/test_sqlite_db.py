"""The shared SQLite file: URL parsing, connections per thread, and waiting for a change."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from celeriac._sqlite.database import SqliteDatabase, open_database, parse_sqlite_url, read_schema


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///rel.db", "rel.db"),
        ("sqlite:///some/dir/rel.db", "some/dir/rel.db"),
        ("sqlite:////abs.db", "/abs.db"),
        ("sqlite:////var/lib/celeriac/queue.db", "/var/lib/celeriac/queue.db"),
        ("sqlite:///rel.db?timeout=5", "rel.db"),
    ],
)
def test_parse_sqlite_url_returns_the_file_path(url: str, path: str) -> None:
    assert parse_sqlite_url(url) == path


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///",
        "sqlite://host/file.db",
        "sqlite:///:memory:",
        "sqlite:///?mode=memory",
        "redis://localhost/0",
        "file.db",
    ],
)
def test_parse_sqlite_url_refuses_urls_that_name_no_shared_file(url: str) -> None:
    with pytest.raises(ValueError):
        parse_sqlite_url(url)


def test_read_schema_reads_the_packaged_sql() -> None:
    assert "CREATE TABLE IF NOT EXISTS celeriac_messages" in read_schema(
        "celeriac.brokers", "sqlite.sql"
    )
    assert "celeriac_results" in read_schema("celeriac.backends", "sqlite.sql")


def test_open_database_gives_one_object_per_file(tmp_path: Path) -> None:
    first = open_database(str(tmp_path / "a.db"))

    assert open_database(str(tmp_path / "sub" / ".." / "a.db")) is first
    assert open_database(str(tmp_path / "b.db")) is not first
    assert first.path == str(tmp_path / "a.db")


def test_a_schema_is_applied_and_outlives_the_connection(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "s.db"))
    db.add_schema("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    db.add_schema("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    with db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
    db.close()

    assert db.connection().execute("SELECT x FROM t").fetchall() == [(1,)]
    assert db.connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_each_thread_has_its_own_connection(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "t.db"))
    mine = db.connection()
    theirs: list[object] = []
    thread = threading.Thread(target=lambda: theirs.append(db.connection()))
    thread.start()
    thread.join()

    assert db.connection() is mine
    assert theirs and theirs[0] is not mine
    db.close()


def test_a_failed_transaction_rolls_back(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "r.db"))
    db.add_schema("CREATE TABLE IF NOT EXISTS t (x INTEGER)")

    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("abort")

    assert db.connection().execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
    with db.transaction() as conn:  # the connection is usable again
        conn.execute("INSERT INTO t VALUES (2)")
    assert db.connection().execute("SELECT x FROM t").fetchall() == [(2,)]
    db.close()


def test_wait_for_change_returns_when_another_connection_commits(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "w.db"))
    db.add_schema("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    version = db.data_version()

    def commit() -> None:
        with db.transaction() as conn:  # this thread's own connection
            conn.execute("INSERT INTO t VALUES (1)")

    writer = threading.Timer(0.05, commit)
    started = time.monotonic()
    writer.start()
    try:
        changed = db.wait_for_change(version, time.monotonic() + 5)
    finally:
        writer.join()

    assert changed is True
    assert time.monotonic() - started < 1.0
    assert db.data_version() != version
    db.close()


def test_wait_for_change_gives_up_at_its_deadline_or_wakes_at_wake_at(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "w.db"))
    version = db.data_version()

    started = time.monotonic()
    assert db.wait_for_change(version, started + 0.05) is False
    assert 0.04 <= time.monotonic() - started < 1.0
    assert db.wait_for_change(version, time.monotonic() + 5, wake_at=time.time() - 1) is True
    assert db.wait_for_change(version, time.monotonic()) is False
    db.close()
