"""The SQLite file as the speed work of issue 12 left it: a WAL kept to ``CHECKPOINT_PAGES``,
a result table in the order results were stored (a file of the older layout keeps working), and
a batch of results stored by one ``executemany`` that still lets the first final result win.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from celeriac import Celeriac, states
from celeriac._sqlite.database import CHECKPOINT_PAGES
from celeriac.backends.base import ResultRecord
from celeriac.backends.sqlite import SqliteBackend
from support.processes import WorkerProcess
from support.waiting import wait_for

PAGE = 4096  # bytes: SQLite's default page size, which celeriac's files keep


def _in_file(path: Path, sql: str) -> int:
    """``sql``'s count, read from the database file without its WAL (0 if there is no table)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the table is still only in the WAL
        return 0
    finally:
        conn.close()


def test_the_wal_is_checkpointed_and_cut_back_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "celeriac.db"
    app = Celeriac("checkpoints", broker=f"sqlite:///{path}")
    wal = Path(f"{path}-wal")
    try:
        body = "x" * (16 * PAGE)
        biggest = 0
        # Each send is a commit of about 17 pages: twice the limit in all.
        for _ in range(2 * CHECKPOINT_PAGES // 17):
            app.send_task("jobs.echo", (body,))
            biggest = max(biggest, wal.stat().st_size)
        assert _in_file(path, "SELECT COUNT(*) FROM celeriac_messages") > 0
        # The WAL started over at least once, cut back to the limit (plus one commit's pages).
        assert biggest <= (CHECKPOINT_PAGES + 64) * (PAGE + 24)
    finally:
        app.close()


def test_a_result_table_of_the_older_layout_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE celeriac_results (task_id TEXT PRIMARY KEY, state TEXT NOT NULL,"
        " content_type TEXT NOT NULL, payload BLOB NOT NULL, date_done REAL,"
        " retries INTEGER NOT NULL DEFAULT 0, meta TEXT NOT NULL DEFAULT '{}',"
        " expires_at REAL) WITHOUT ROWID"
    )
    conn.close()
    backend = SqliteBackend(str(path))
    try:
        started = ResultRecord("a", states.STARTED, meta={"worker": "w"})
        done = ResultRecord("a", states.SUCCESS, payload=b"1")
        b_done = ResultRecord("b", states.SUCCESS)
        assert backend.store_many([started, b_done], expires=60) == [True, True]
        assert backend.store_many([done, ResultRecord("b", states.FAILURE)], expires=60) == [
            True,
            False,
        ]
        assert backend.get("a") == done
        assert backend.get("b") == b_done
        backend.forget(["a"])
        assert backend.get("a") is None
    finally:
        backend.close()


def test_a_batch_with_a_result_already_final_stores_the_others_only(tmp_path: Path) -> None:
    backend = SqliteBackend(str(tmp_path / "celeriac.db"))
    try:
        first = ResultRecord("twice", states.SUCCESS, payload=b"1")
        assert backend.store(first) is True
        batch = [
            ResultRecord("one", states.SUCCESS),
            ResultRecord("twice", states.SUCCESS, payload=b"2"),
            ResultRecord("two", states.STARTED),
            ResultRecord("two", states.FAILURE, payload=b'{"exc_type": "E"}'),
            ResultRecord("two", states.SUCCESS),
        ]
        assert backend.store_many(batch, expires=None) == [True, False, True, True, False]
        assert backend.get("twice") == first
        assert backend.get("two") == batch[3]
        assert backend.get("one") == batch[0]
    finally:
        backend.close()


def test_a_worker_keeps_the_first_final_result_of_a_task_sent_again(
    client: Celeriac, sqlite_url: str
) -> None:
    # A result already final (a run that lost its lease, say) stays, in a batch of others.
    client.backend.store(ResultRecord("sent-twice", states.SUCCESS, payload=b"42"))
    with WorkerProcess(sqlite_url, "-c", "2") as worker:
        before = [client.send_task("jobs.add", (i, 1)) for i in range(20)]
        again = client.send_task("jobs.add", (2, 3), task_id="sent-twice")
        after = [client.send_task("jobs.add", (i, 2)) for i in range(20)]
        assert [r.get(timeout=30) for r in before] == [i + 1 for i in range(20)], worker.output
        assert [r.get(timeout=30) for r in after] == [i + 2 for i in range(20)]
        # Its message is settled only once its outcome was recorded (and refused).
        assert wait_for(lambda: client.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}, 30)
        assert again.get(timeout=1) == 42
