"""The task history contract (``ResultBackend.record_events`` and the rest), run against every
backend through the ``backend`` fixture of ``conftest.py`` (memory, SQLite, Redis)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from celeriac import states
from celeriac.backends.base import ResultBackend
from celeriac.backends.sqlite import SqliteBackend
from celeriac.history import (
    FAILED,
    PROGRESS,
    RECEIVED,
    RETRIED,
    REVOKED,
    SENT,
    STARTED,
    SUCCEEDED,
    TaskEvent,
    TaskQuery,
    WorkerEntry,
)
from support.clock import FakeClock

T0 = 1_000_000.0  # FakeClock's start


def event(kind: str, task_id: str, at: float, host: str = "w1", **fields: object) -> TaskEvent:
    return TaskEvent(type=kind, task_id=task_id, timestamp=at, hostname=host, fields=fields)


def lifecycle(task_id: str, at: float, name: str = "jobs.add", ok: bool = True) -> list[TaskEvent]:
    end = (
        event(SUCCEEDED, task_id, at + 2, result="3", runtime=1.5)
        if ok
        else event(FAILED, task_id, at + 2, exception="KeyError('x')", traceback="Traceback...")
    )
    return [
        event(RECEIVED, task_id, at, name=name, args="[1, 2]", kwargs="{}", queue="celeriac"),
        event(STARTED, task_id, at + 0.5, pid=42),
        end,
    ]


def test_a_task_s_events_merge_into_one_entry_with_its_timeline(backend: ResultBackend) -> None:
    events = lifecycle("t1", T0)
    backend.record_events(events, retention=None)

    entry = backend.history_task("t1")

    assert entry is not None
    assert (entry.name, entry.state, entry.args, entry.kwargs) == (
        "jobs.add",
        "SUCCESS",
        "[1, 2]",
        "{}",
    )
    assert (entry.result, entry.runtime, entry.worker, entry.queue) == ("3", 1.5, "w1", "celeriac")
    assert (entry.received, entry.started, entry.finished) == (T0, T0 + 0.5, T0 + 2)
    assert entry.seen == T0
    assert entry.events == tuple(events)
    assert backend.history_task("nobody") is None


def test_a_failure_keeps_its_exception_and_traceback(backend: ResultBackend) -> None:
    backend.record_events(lifecycle("t1", T0, ok=False), retention=None)

    entry = backend.history_task("t1")

    assert entry is not None and entry.state == states.FAILURE
    assert (entry.exception, entry.traceback) == ("KeyError('x')", "Traceback...")


def test_a_late_task_sent_never_replaces_the_state(backend: ResultBackend) -> None:
    backend.record_events(lifecycle("t1", T0), retention=None)
    sent = event(SENT, "t1", T0 - 1, host="client", name="jobs.add", retries=0)
    backend.record_events([sent], retention=None)

    entry = backend.history_task("t1")

    assert entry is not None
    assert (entry.state, entry.sent, entry.seen, entry.worker) == ("SUCCESS", T0 - 1, T0 - 1, "w1")
    assert entry.events[0] == sent  # the timeline goes by time


def test_a_retried_task_goes_round_again(backend: ResultBackend) -> None:
    backend.record_events(
        [
            *lifecycle("t1", T0)[:2],
            event(RETRIED, "t1", T0 + 1, exception="Retry in 1s", traceback="tb"),
            event(RECEIVED, "t1", T0 + 3, retries=1),
            event(PROGRESS, "t1", T0 + 4, state="PROGRESS", meta={"done": 5}),
        ],
        retention=None,
    )

    entry = backend.history_task("t1")

    assert entry is not None
    assert (entry.state, entry.retries, entry.progress) == ("PROGRESS", 1, {"done": 5})
    assert [e.type for e in entry.events][-2:] == [RECEIVED, PROGRESS]
    assert backend.history_counts() == {"PROGRESS": {"jobs.add": 1}}


def test_an_older_event_never_replaces_a_newer_state(backend: ResultBackend) -> None:
    finished, started = lifecycle("t1", T0)[2], lifecycle("t1", T0)[1]
    backend.record_events([finished], retention=None)
    backend.record_events([started], retention=None)

    entry = backend.history_task("t1")

    assert entry is not None and entry.state == states.SUCCESS


def fill(backend: ResultBackend) -> None:
    events = []
    for i in range(10):
        name = "jobs.add" if i % 2 else "jobs.mul"
        host = "w1" if i < 5 else "w2"
        events += [
            event(RECEIVED, f"t{i}", T0 + i, host=host, name=name, args=f"[{i}]", kwargs="{}"),
            event(
                SUCCEEDED if i % 3 else FAILED, f"t{i}", T0 + i + 0.5, host=host, result=f'"r{i}"'
            ),
        ]
    backend.record_events(events, retention=None)


def ids(backend: ResultBackend, **query: object) -> list[str]:
    return [t.task_id for t in backend.history_tasks(TaskQuery(**query)).tasks]  # type: ignore[arg-type]


def test_a_search_lists_the_newest_first_with_the_total(backend: ResultBackend) -> None:
    fill(backend)

    page = backend.history_tasks(TaskQuery(limit=3, offset=2))

    assert [t.task_id for t in page.tasks] == ["t7", "t6", "t5"]
    assert page.total == 10
    assert page.tasks[0].events == ()  # timelines come with history_task only


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"state": "FAILURE"}, ["t9", "t6", "t3", "t0"]),
        ({"name": "jobs.add"}, ["t9", "t7", "t5", "t3", "t1"]),
        ({"worker": "w1", "state": "SUCCESS"}, ["t4", "t2", "t1"]),
        ({"since": T0 + 2, "until": T0 + 4}, ["t4", "t3", "t2"]),
        ({"text": "[7]"}, ["t7"]),
        ({"text": '"r8"'}, ["t8"]),
        ({"text": "r", "name": "jobs.mul", "limit": 2}, ["t8", "t6"]),
        ({"name": "nothing"}, []),
    ],
)
def test_a_search_filters(
    backend: ResultBackend, query: dict[str, object], expected: list[str]
) -> None:
    fill(backend)

    assert ids(backend, **query) == expected


def test_an_entry_written_across_writes_is_whole_and_found_by_its_text(
    backend: ResultBackend,
) -> None:
    received, started, succeeded = lifecycle("t1", T0)
    backend.record_events([received, started], retention=None)
    backend.record_events([succeeded], retention=None)

    (listed,) = backend.history_tasks(TaskQuery(text="[1, 2]")).tasks
    assert ids(backend, text="3") == ["t1"]  # the result, written second
    assert (listed.name, listed.args, listed.kwargs, listed.result) == (
        "jobs.add",
        "[1, 2]",
        "{}",
        "3",
    )
    assert (listed.worker, listed.queue, listed.runtime) == ("w1", "celeriac", 1.5)
    assert (listed.received, listed.started, listed.finished) == (T0, T0 + 0.5, T0 + 2)
    assert (listed.state, listed.seen, listed.state_time) == (states.SUCCESS, T0, T0 + 2)
    assert backend.history_task("t1") == replace(listed, events=tuple(lifecycle("t1", T0)))


def test_counts_by_state_and_name(backend: ResultBackend) -> None:
    fill(backend)

    assert backend.history_counts() == {
        "SUCCESS": {"jobs.add": 3, "jobs.mul": 3},
        "FAILURE": {"jobs.add": 2, "jobs.mul": 2},
    }


def test_a_series_counts_what_finished_per_bucket(backend: ResultBackend, clock: FakeClock) -> None:
    clock.advance(20)
    backend.record_events(
        [
            event(SUCCEEDED, "a", T0 + 1, runtime=1.0),
            event(SUCCEEDED, "b", T0 + 2, runtime=3.0),
            event(FAILED, "c", T0 + 12, runtime=2.0),
            event(RETRIED, "d", T0 + 13),
        ],
        retention=None,
    )

    buckets = backend.history_series(T0, 10)

    assert [b["start"] for b in buckets] == [T0, T0 + 10, T0 + 20]
    assert buckets[0] == {
        "start": T0,
        "succeeded": 2,
        "failed": 0,
        "retried": 0,
        "runtime_avg": 2.0,
        "runtime_max": 3.0,
    }
    assert (buckets[1]["failed"], buckets[1]["retried"], buckets[1]["runtime_max"]) == (1, 1, 2.0)
    assert buckets[2]["succeeded"] == 0


def test_the_feed_reads_on_from_a_cursor(backend: ResultBackend) -> None:
    backend.record_events(lifecycle("old", T0), retention=None)
    none, cursor = backend.read_events(None)
    assert none == []

    fresh = lifecycle("t1", T0 + 5)
    backend.record_events(fresh, retention=None)
    first, cursor = backend.read_events(cursor, limit=2)
    rest, cursor = backend.read_events(cursor)
    nothing, same = backend.read_events(cursor)

    assert first + rest == fresh
    assert (nothing, same) == ([], cursor)


def test_entries_go_after_their_retention(backend: ResultBackend, clock: FakeClock) -> None:
    backend.record_events(lifecycle("old", T0), retention=60)
    assert ids(backend) == ["old"]  # indexed
    clock.advance(30)
    backend.record_events(lifecycle("new", T0 + 30), retention=60)
    clock.advance(31)  # indexing "new" prunes "old"

    assert backend.history_task("old") is None
    assert backend.history_task("new") is not None
    assert ids(backend) == ["new"]
    assert backend.history_counts() == {"SUCCESS": {"jobs.add": 1}}


def test_what_nobody_read_before_its_retention_ended_is_never_indexed(
    backend: ResultBackend, clock: FakeClock
) -> None:
    backend.record_events(lifecycle("old", T0), retention=60)
    clock.advance(30)
    backend.record_events(lifecycle("new", T0 + 30), retention=60)
    clock.advance(31)

    assert backend.history_task("old") is None
    assert backend.history_task("new") is not None
    assert ids(backend) == ["new"]
    assert backend.history_counts() == {"SUCCESS": {"jobs.add": 1}}


def test_heartbeats_show_until_their_ttl(backend: ResultBackend, clock: FakeClock) -> None:
    one = WorkerEntry(
        "w1@host",
        last_heartbeat=T0,
        pid=7,
        concurrency=4,
        pool="prefork",
        active=1,
        processed=10,
        loadavg=(0.5, 0.25, 0.0),
        queues=("celeriac",),
    )
    backend.record_worker(one, ttl=10)
    backend.record_worker(WorkerEntry("w2@host", online=False, last_heartbeat=T0), ttl=5)

    assert backend.workers() == [one, WorkerEntry("w2@host", online=False, last_heartbeat=T0)]
    clock.advance(6)
    assert [w.hostname for w in backend.workers()] == ["w1@host"]
    clock.advance(5)
    assert backend.workers() == []


def test_the_history_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "h.db")
    backend = SqliteBackend(path)
    backend.record_events(lifecycle("t1", T0), retention=None)
    backend.close()

    again = SqliteBackend(path)
    entry = again.history_task("t1")
    again.close()

    assert entry is not None and entry.state == states.SUCCESS and len(entry.events) == 3


def test_hidden_arguments_are_empty_text(backend: ResultBackend) -> None:
    backend.record_events([event(RECEIVED, "t1", T0, name="x", args="", kwargs="")], retention=None)

    entry = backend.history_task("t1")

    assert entry is not None and (entry.args, entry.kwargs, entry.state) == ("", "", "RECEIVED")


def test_a_revoked_task_is_final(backend: ResultBackend) -> None:
    backend.record_events([event(REVOKED, "t1", T0, name="x", expired=False)], retention=None)

    entry = backend.history_task("t1")

    assert entry is not None and (entry.state, entry.finished) == ("REVOKED", T0)
