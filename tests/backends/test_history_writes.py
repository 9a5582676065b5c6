"""The history written in several pieces, as the worker's history writer does it
(``worker/history_writer.py``): a task's events split over writes, chunks of many tasks, the
timeline kept in the entry. Every backend, through the ``backend`` fixture."""

from __future__ import annotations

from celeriac.backends.base import ResultBackend
from celeriac.history import RECEIVED, STARTED, SUCCEEDED, TaskEvent, TaskQuery
from celeriac.worker.history_writer import chunks

T0 = 1_000_000.0  # FakeClock's start


def lifecycle(task_id: str, at: float) -> list[TaskEvent]:
    fields = {"name": "jobs.add", "args": f"[{task_id!r}]", "kwargs": "{}", "queue": "q"}
    return [
        TaskEvent(RECEIVED, task_id, at, "w1", fields),
        TaskEvent(STARTED, task_id, at + 0.5, "w1"),
        TaskEvent(
            SUCCEEDED, task_id, at + 1, "w1", {"result": f'"done {task_id}"', "runtime": 0.5}
        ),
    ]


def test_a_task_written_in_pieces_is_one_entry(backend: ResultBackend) -> None:
    received, started, succeeded = lifecycle("t1", T0)
    for event in (received, started, succeeded):
        backend.record_events([event], retention=60)

    entry = backend.history_task("t1")
    assert entry is not None
    assert (entry.state, entry.name, entry.worker, entry.seen) == ("SUCCESS", "jobs.add", "w1", T0)
    assert [e.type for e in entry.events] == [RECEIVED, STARTED, SUCCEEDED]
    assert backend.history_counts() == {"SUCCESS": {"jobs.add": 1}}
    # Text written by two writes is found by either part: args (first), result (last).
    for text in ("['t1']", "done t1"):
        page = backend.history_tasks(TaskQuery(text=text))
        assert [t.task_id for t in page.tasks] == ["t1"], text
    for state, total in (("SUCCESS", 1), ("RECEIVED", 0), ("STARTED", 0)):
        assert backend.history_tasks(TaskQuery(state=state)).total == total


def test_chunks_of_many_tasks_keep_every_task_and_its_timeline(backend: ResultBackend) -> None:
    events = [e for n in range(120) for e in lifecycle(f"t{n:03}", T0 + n)]
    parts = chunks(events, 50)
    assert [len(p) for p in parts] == [150, 150, 60]
    for part in parts:
        backend.record_events(part, retention=None)

    page = backend.history_tasks(TaskQuery(limit=5, name="jobs.add", worker="w1"))
    assert page.total == 120
    assert [t.task_id for t in page.tasks] == ["t119", "t118", "t117", "t116", "t115"]
    entry = backend.history_task("t007")
    assert entry is not None and len(entry.events) == 3 and entry.result == '"done t007"'
    assert backend.history_counts() == {"SUCCESS": {"jobs.add": 120}}
