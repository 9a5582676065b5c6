"""While the dashboard runs, it keeps the task history indexed from the event log
(``dashboard/indexing.py``), without a page asking, and its task list says when the history is
behind: on SQLite and Redis."""

from __future__ import annotations

import time

import pytest

from celeriac import Celeriac
from celeriac.backends.history_log import EventLog
from celeriac.history import RECEIVED, SUCCEEDED, TaskEvent
from dashboard.helpers import Dashboard
from support.waiting import wait_for


def test_a_running_dashboard_indexes_what_workers_append(board: Celeriac) -> None:
    log = board.backend.history
    assert isinstance(log, EventLog)
    now = time.time()
    events = [
        TaskEvent(RECEIVED, "t1", now, "w1@h", {"name": "board.add", "args": "[1, 2]"}),
        TaskEvent(SUCCEEDED, "t1", now + 0.01, "w1@h", {"result": "3", "runtime": 0.01}),
    ]
    board.backend.record_events(events, retention=None)
    appended = log.batches_after("", 10)[-1].position
    assert log.index_position() == ""  # nobody read the history yet

    with Dashboard(board).client as client:  # `with`: the app's lifespan runs
        assert wait_for(lambda: log.index_position() == appended, 10)
        assert client.get("/api/tasks/t1").json()["state"] == "SUCCESS"


def test_the_task_list_says_when_the_history_is_behind(
    board: Celeriac, monkeypatch: pytest.MonkeyPatch
) -> None:
    dashboard = Dashboard(board)
    assert dashboard.get("/api/tasks").json()["lag"] == 0.0
    assert "catching up" not in dashboard.get("/tasks").text

    monkeypatch.setattr(board.backend, "history_lag", lambda: 42.0)  # a backlog, being indexed
    assert dashboard.get("/api/tasks").json()["lag"] == 42.0
    assert "it is 42 s behind" in dashboard.get("/tasks").text
