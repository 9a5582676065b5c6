"""While the dashboard runs, it keeps the task history indexed from the event log
(``dashboard/indexing.py``), without a page asking: on SQLite and Redis."""

from __future__ import annotations

import time

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
