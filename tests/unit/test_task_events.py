"""The pieces of task events that need no worker: the merge rule (``history.apply``/``fold``),
the worker's buffer (what it holds back), and the one-line form ``celeriac events`` prints.
The backends' side is tests/backends/test_history.py; real workers, tests/test_events.py."""

from __future__ import annotations

import time

from celeriac.brokers.base import Delivery
from celeriac.event_rows import event_of, events_of, row_of
from celeriac.events import describe
from celeriac.history import (
    FAILED,
    PROGRESS,
    RECEIVED,
    SENT,
    STARTED,
    SUCCEEDED,
    TaskEvent,
    apply,
    fold,
    timeline,
)
from celeriac.message import Message
from celeriac.middleware.events import EventBuffer, EventOptions
from celeriac.worker.held import Held


def test_fold_merges_a_batch_as_apply_does_event_by_event() -> None:
    events = [
        TaskEvent(RECEIVED, "a", 10.0, "w1", {"name": "x", "args": "[1]"}),
        TaskEvent(SENT, "a", 9.0, "", {"name": "x", "queue": "q"}),
        TaskEvent(STARTED, "a", 11.0, "w1"),
        TaskEvent(FAILED, "a", 12.0, "w1", {"exception": "E: x", "runtime": 1.0}),
        TaskEvent(SENT, "b", 5.0, "", {"name": "y"}),
    ]
    folded = fold(events)
    entry = None
    for event in events[:4]:
        entry = apply(entry, event)
    assert entry is not None
    a = folded["a"]
    assert (a.state, a.state_time, a.takes, a.seen) == ("FAILURE", 12.0, True, 9.0)
    assert (entry.state, entry.seen, entry.sent, entry.finished) == ("FAILURE", 9.0, 9.0, 12.0)
    assert a.patch["exception"] == entry.exception == "E: x"
    assert a.patch["queue"] == entry.queue == "q" and entry.worker == "w1"
    assert len(a.lines) == 4 and TaskEvent.from_json(a.lines[0]) == events[0]
    assert (folded["b"].state, folded["b"].takes) == ("PENDING", False)


def test_progress_takes_its_own_state_and_meta() -> None:
    entry = apply(
        None, TaskEvent(PROGRESS, "a", 1.0, "w", {"state": "UPLOADING", "meta": {"n": 1}})
    )
    assert (entry.state, entry.progress) == ("UPLOADING", {"n": 1})


def test_a_worker_s_rows_become_celery_s_events() -> None:
    received = [
        RECEIVED,
        "a",
        1.0,
        {"name": "t.add", "body": '[[2,3],{"x":1}]', "retries": 0, "queue": "q"},
    ]
    failed = [FAILED, "a", 2.0, {"name": "t.add", "exception": "KeyError: 'x'", "error": TRACE}]
    started = [STARTED, "a", 1.5, None]
    events = events_of([received, started, failed, ["not", "a row"]], "w1@h")
    assert [e.type for e in events] == [RECEIVED, STARTED, FAILED]
    assert events[0].fields["args"] == "[2,3]" and events[0].fields["kwargs"] == '{"x":1}'
    assert "body" not in events[0].fields and events[0].hostname == "w1@h"
    assert events[1].fields == {}
    assert events[2].fields["traceback"] == "Traceback...\nKeyError: 'x'"
    assert "error" not in events[2].fields
    # Celery's fields (a TaskEvent made elsewhere, as row_of writes it) pass through.
    sent = TaskEvent(SENT, "b", 1.0, "", {"name": "t.add", "args": "[1]", "retries": 0})
    assert event_of(row_of(sent), "") == sent


TRACE = '{"exc_type":"KeyError","traceback":"Traceback...\\nKeyError: \'x\'"}'


def test_a_disabled_buffer_takes_nothing_in() -> None:
    buffer = EventBuffer(EventOptions(enabled=False), "w1")
    buffer.started([])
    assert buffer.take() == []


def test_one_readable_line_per_event() -> None:
    at = time.mktime((2026, 12, 2, 18, 2, 8, 0, 0, -1)) + 0.661
    line = describe(TaskEvent(SUCCEEDED, "id-1", at, "w1@h", {"result": "4", "runtime": 0.00012}))
    assert line == "18:02:08.661 task-succeeded  id-1 @w1@h 4 in 0.0001s"
    received = TaskEvent(
        RECEIVED, "id-2", at, "w1@h", {"name": "t.add", "args": "[2,2]", "kwargs": "{}"}
    )
    assert describe(received).endswith("task-received   id-2 @w1@h t.add args=[2,2] kwargs={}")


def test_a_timeline_puts_task_sent_first_whatever_its_clock_said() -> None:
    # the client stamps task-sent with the broker's clock; a worker that received the task
    # within a millisecond may have stamped task-received a little earlier
    events = [
        TaskEvent(SUCCEEDED, "a", 3.0, "w1"),
        TaskEvent(RECEIVED, "a", 1.0, "w1"),
        TaskEvent(SENT, "a", 1.001, ""),
        TaskEvent(STARTED, "a", 2.0, "w1"),
    ]
    assert [e.type for e in timeline(events)] == [SENT, RECEIVED, STARTED, SUCCEEDED]


def test_events_are_stamped_by_the_broker_s_clock_read_once_a_turn() -> None:
    readings: list[float] = []

    def broker_clock() -> float:  # Redis's clock: this host's plus an offset
        readings.append(time.time() + 100.0)
        return readings[-1]

    buffer = EventBuffer(EventOptions(), "w1", broker_clock)
    held = Held(Delivery(b"", "q", "1", "t", 1), Message(id="a", task="t.add", body=b"[[],{}]"))
    buffer.received(held)
    held.started_at = time.time()
    buffer.started([held])
    received, started = buffer.take()
    assert abs(received[2] - (time.time() + 100.0)) < 5
    assert abs(started[2] - (time.time() + 100.0)) < 5
    assert len(readings) == 2  # once for the first event, once for the turn: not an event each
