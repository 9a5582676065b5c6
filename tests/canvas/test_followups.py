"""Follow-ups that run twice, outcomes stored twice, and workflows that cannot be followed."""

from __future__ import annotations

import logging

import pytest

from celeriac import AsyncResult, chain, chord, states
from celeriac.backends.base import ResultRecord
from celeriac.message import Message
from celeriac.serialization import json_dumps

from .conftest import Flow


def _duplicate_everything_queued(flow: Flow) -> int:
    """Publish a second copy of every queued message (same task ids), as a redelivery after a
    crash would run them twice."""
    broker = flow.app.broker
    deliveries = broker.fetch(["celeriac"], 1000, lease=60, consumer="dup", timeout=0)
    broker.publish_many([Message.decode(d.body) for d in deliveries])
    for delivery in deliveries:
        broker.requeue(delivery)
    return len(deliveries)


def test_chord_members_that_run_twice_start_the_body_once(flow: Flow) -> None:
    runs: list[int] = []

    @flow.app.task(name="flow.counted_sum")
    def counted_sum(numbers: list[int]) -> int:
        runs.append(1)
        return sum(numbers)

    result = chord([flow.add.s(i, i) for i in range(10)], counted_sum.s())()
    assert _duplicate_everything_queued(flow) == 10
    flow.run()
    assert result.get(timeout=1) == 90
    assert runs == [1]


def test_the_last_member_reporting_twice_starts_the_body_once(flow: Flow) -> None:
    from celeriac.canvas.engine import follow_up

    chord([flow.add.s(1, 1), flow.add.s(2, 2)], flow.tsum.s())()
    messages = [
        Message.decode(d.body)
        for d in flow.app.broker.fetch(["celeriac"], 10, lease=60, consumer="t", timeout=0)
    ]
    for message in messages:
        value = sum(flow.app.serializer.loads(message.content_type, message.body)[0])
        payload = json_dumps(value)
        record = ResultRecord(message.id, states.SUCCESS, payload)
        flow.app.backend.store(record)
        for _ in range(3):
            follow_up(flow.app, message, record)
    assert flow.app.broker.queue_lengths(["celeriac"]) == {"celeriac": 2 + 1}  # 2 leased, 1 body


def test_the_stored_outcome_wins_over_a_second_run(flow: Flow) -> None:
    workflow = chain(flow.fail.s(), flow.add.s(1))
    result = workflow.freeze()
    first = result.parent
    assert first is not None
    # An earlier run of the first step already succeeded with 5; this run fails.
    flow.app.backend.store(ResultRecord(first.id, states.SUCCESS, b"5"))
    workflow.apply_async()
    flow.run()
    assert first.get(timeout=1) == 5
    assert result.get(timeout=1) == 6


def test_a_workflow_that_cannot_be_read_is_logged_and_acked(
    flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    bad = flow.app.sender.message(
        "flow.add", (1, 1), {}, {"workflow": {"chain": [{"no task": True}]}}, task_defaults={}
    )
    flow.app.broker.publish(bad)
    with caplog.at_level(logging.ERROR, logger="celeriac.worker"):
        assert flow.run() == 1
    assert "follow-ups of flow.add" in caplog.text
    assert flow.app.AsyncResult(bad.id).get(timeout=1) == 2
    assert flow.app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


def test_a_revoked_step_ends_the_rest_of_its_chain(flow: Flow) -> None:
    workflow = chain(flow.add.s(1, 1), flow.add.s(1), flow.add.s(1))
    result = workflow.freeze()
    first = result.parent.parent  # type: ignore[union-attr]
    assert isinstance(first, AsyncResult) and isinstance(result, AsyncResult)
    first.revoke()
    workflow.apply_async()
    flow.run()
    assert first.state == states.REVOKED
    assert result.state == states.REVOKED


def test_a_step_no_worker_knows_ends_the_chain_and_the_chord(flow: Flow) -> None:
    unknown = flow.app.signature("flow.nobody_has_this")
    result = chain(flow.add.s(1, 1), unknown, flow.add.s(1))()
    failed_chord = chord([flow.add.s(1, 1), unknown], flow.tsum.s())()
    flow.run()
    assert result.state == states.FAILURE
    assert "not registered" in str(result.result)
    assert failed_chord.state == states.FAILURE
