"""Signatures survive JSON, and the options of a signature apply to its own step."""

from __future__ import annotations

import json

import pytest

from celeriac import Signature, chain, chord, chunks, group, signature, xmap, xstarmap
from celeriac.message import Message

from .conftest import Flow


def _round_trip(sig: Signature) -> Signature:
    return Signature.from_dict(json.loads(json.dumps(sig.to_dict())))


@pytest.mark.parametrize("broker_kind", ["memory"], indirect=True)
def test_every_canvas_type_survives_a_json_round_trip(flow: Flow) -> None:
    add, tsum = flow.add, flow.tsum
    linked = add.s(1, 2).set(queue="other", priority=3)
    linked.link(flow.log_result.s())
    canvases: list[Signature] = [
        linked,
        add.si(1, 2),
        chain(add.s(1, 1), add.s(2)),
        group(add.s(i, i) for i in range(3)),
        chord([add.s(1, 1), add.s(2, 2)], tsum.s()),
        flow.xsum.map([range(3), [4, 5]]),
        add.starmap([(1, 2), (3, 4)]),
        add.chunks([(1, 2), (3, 4), (5, 6)], 2),
        chain(group(add.s(1, 1), chain(add.s(2, 2), add.s(1))), chord([add.s(3, 3)], tsum.s())),
    ]
    for sig in canvases:
        again = _round_trip(sig)
        assert type(again) is type(sig)
        assert again == sig
        assert again.to_dict() == sig.to_dict()


@pytest.mark.parametrize("broker_kind", ["memory"], indirect=True)
def test_the_dict_form_is_celery_s(flow: Flow) -> None:
    add = flow.add
    assert add.s(1).to_dict()["subtask_type"] is None
    made = {
        "chain": chain(add.s(1), add.s(2)),
        "group": group(add.s(1)),
        "chord": chord([add.s(1)], add.s(2)),
        "xmap": add.map([1]),
        "xstarmap": add.starmap([(1, 2)]),
        "chunks": add.chunks([(1, 2)], 1),
    }
    for kind, sig in made.items():
        data = sig.to_dict()
        assert data["subtask_type"] == kind
        assert set(data) == {"task", "args", "kwargs", "options", "immutable", "subtask_type"}
    assert made["chain"].to_dict()["task"] == "celery.chain"
    assert [t["task"] for t in made["chain"].to_dict()["kwargs"]["tasks"]] == ["flow.add"] * 2
    assert set(made["chord"].to_dict()["kwargs"]) == {"header", "body"}
    assert type(signature(made["chord"].to_dict())) is chord
    assert isinstance(made["xmap"], xmap) and isinstance(made["xstarmap"], xstarmap)
    assert isinstance(made["chunks"], chunks)


def test_a_rebuilt_workflow_runs(flow: Flow) -> None:
    workflow = chain(flow.add.s(1, 1), chord([flow.add.s(1), flow.add.s(2)], flow.tsum.s()))
    rebuilt = Signature.from_dict(json.loads(json.dumps(workflow.to_dict())), flow.app)
    result = rebuilt.apply_async()
    flow.run()
    assert result.get(timeout=1) == 7


def test_the_rest_of_a_chain_travels_in_the_message(flow: Flow) -> None:
    chain(flow.add.s(1, 1), flow.mul.s(3), flow.add.s(1))()
    (delivery,) = flow.app.broker.fetch(["celeriac"], 1, lease=10, consumer="t", timeout=0)
    message = Message.decode(delivery.body)
    assert message.task == "flow.add"
    assert [step["task"] for step in message.workflow["chain"]] == ["flow.mul", "flow.add"]
    assert all(step["options"]["task_id"] for step in message.workflow["chain"])


def test_a_step_with_its_own_queue_runs_on_a_worker_of_that_queue(flow: Flow) -> None:
    workflow = chain(flow.add.s(1, 1), flow.mul.s(10).set(queue="other"), flow.add.s(5))
    result = workflow()
    assert flow.run() == 1  # the first step; the second waits in "other"
    assert flow.app.broker.queue_lengths(["other"]) == {"other": 1}
    assert flow.run() == 0
    assert flow.run("other") == 1
    assert flow.run() == 1
    assert result.get(timeout=1) == 25


def test_options_given_to_a_chain_apply_to_every_step_as_defaults(flow: Flow) -> None:
    workflow = chain(flow.add.s(1, 1), flow.add.s(1).set(queue="celeriac"))
    result = workflow.apply_async(queue="other")
    assert flow.run() == 0
    assert flow.run("other") == 1
    assert flow.run() == 1
    assert result.get(timeout=1) == 3


def test_priority_and_countdown_apply_to_their_step(flow: Flow) -> None:
    slow = flow.add.s(1, 1).set(countdown=60)
    fast = flow.add.s(2, 2).set(priority=9)
    first = slow.delay()
    second = fast.delay()
    (delivery,) = flow.app.broker.fetch(["celeriac"], 5, lease=10, consumer="t", timeout=0)
    assert Message.decode(delivery.body).id == second.id
    assert Message.decode(delivery.body).priority == 9
    assert first.state == "PENDING"


def test_a_chain_step_s_countdown_counts_from_when_it_is_sent(flow: Flow) -> None:
    result = chain(flow.add.s(1, 1), flow.add.s(1).set(countdown=3600))()
    flow.run()
    assert result.parent.get(timeout=1) == 2
    assert flow.app.broker.queue_lengths(["celeriac"]) == {"celeriac": 1}
    assert flow.run() == 0  # not before an hour
    assert result.state == "PENDING"


def test_clone_of_a_canvas_is_deep(flow: Flow) -> None:
    workflow = chain(flow.add.s(1, 1), flow.add.s(2))
    copy = workflow.clone()
    assert isinstance(copy, chain)
    copy.tasks[0].set(queue="other")
    assert workflow.tasks[0].options == {}
    assert copy.tasks[0].options == {"queue": "other"}
