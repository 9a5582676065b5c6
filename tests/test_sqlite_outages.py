"""A SQLite file locked for long: a publish gives up within ``broker_publish_timeout`` with
``PublishError``, while a worker's batch waits for the lock as long as it takes (up to 30 s).

Another process holding the write lock is played by a plain ``sqlite3`` connection in
``BEGIN IMMEDIATE``, which is what a stuck writer looks like to everyone else.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celeriac
from celeriac._sqlite.database import read_schema
from celeriac.brokers.sqlite import SqliteBroker
from celeriac.exceptions import PublishError
from celeriac.message import Message

PUBLISH_TIMEOUT = 1.0
SLACK = 0.5


@pytest.fixture
def path(tmp_path: Path) -> str:
    """A broker file with its tables, made by a connection that is not celeriac's, so this
    process opens it (and applies its schema) for the first time in the test."""
    file = str(tmp_path / "broker.db")
    conn = sqlite3.connect(file, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(read_schema("celeriac.brokers", "sqlite.sql"))
    conn.close()
    return file


@pytest.fixture
def locked(path: str) -> Iterator[sqlite3.Connection]:
    """Another connection holding the file's write lock for the test."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    yield conn
    conn.execute("ROLLBACK")
    conn.close()


def _app(path: str) -> Celeriac:
    return Celeriac("client", broker=f"sqlite:///{path}", broker_publish_timeout=PUBLISH_TIMEOUT)


def _message() -> Message:
    return Message(id="m1", task="t", body=b"[[],{}]", queue="celeriac")


def test_delay_on_a_locked_file_opened_first_raises_publish_error_in_time(
    path: str, locked: sqlite3.Connection
) -> None:
    app = _app(path)
    started = time.monotonic()
    with pytest.raises(PublishError, match="locked"):
        app.send_task("jobs.add", (1, 2))
    assert time.monotonic() - started <= PUBLISH_TIMEOUT + SLACK
    app.close()


def test_delay_on_a_file_locked_later_raises_publish_error_in_time(path: str) -> None:
    app = _app(path)
    app.send_task("jobs.add", (1, 2))  # the file is open and its schema applied
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(PublishError, match="locked"):
            app.send_task("jobs.add", (1, 2))
        assert time.monotonic() - started <= PUBLISH_TIMEOUT + SLACK
        with pytest.raises(PublishError, match="locked"):
            app.broker.broadcast(b"{}")  # a control message is a publish too
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    app.send_task("jobs.add", (1, 2))  # the lock is gone: sending works again
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 2}
    app.close()


def test_a_publish_waits_no_longer_behind_another_thread_of_its_process(path: str) -> None:
    broker = SqliteBroker(path, publish_timeout=PUBLISH_TIMEOUT)
    broker.publish(_message())
    holding, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with broker.batch():  # this thread's transaction holds the file's lock
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        assert holding.wait(5)
        started = time.monotonic()
        with pytest.raises(PublishError):
            broker.publish(_message())
        assert time.monotonic() - started <= PUBLISH_TIMEOUT + SLACK
    finally:
        release.set()
        holder.join(10)
    broker.close()


def test_a_workers_batch_waits_for_the_lock_past_the_publish_timeout(path: str) -> None:
    broker = SqliteBroker(path, publish_timeout=PUBLISH_TIMEOUT)
    message = _message()
    broker.publish(message)
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN IMMEDIATE")
    unlock = threading.Timer(PUBLISH_TIMEOUT + 1.0, lambda: locker.execute("ROLLBACK"))
    unlock.start()
    try:
        started = time.monotonic()
        with broker.batch():
            taken = broker.fetch(["celeriac"], 1, lease=30, consumer="w", timeout=0)
        assert [d.body for d in taken] == [message.encode()]
        assert time.monotonic() - started >= PUBLISH_TIMEOUT
    finally:
        unlock.join()
        locker.close()
        broker.close()
