"""Links, errbacks (both of Celery's forms), and how failures end chains, chords and groups."""

from __future__ import annotations

import pytest

from celeriac import ChordError, Request, chain, chord, group, states

from .conftest import Boom, Flow


def test_a_link_gets_the_result_and_is_a_child(flow: Flow) -> None:
    sig = flow.add.s(1, 2)
    callback = sig.link(flow.log_result.s())
    assert callback == flow.log_result.s()
    result = sig.delay()
    flow.run()
    assert flow.logged("log_result") == [3]
    (child,) = result.children
    assert child.get(timeout=1) == 3


def test_one_parameter_errback_gets_the_failed_task_id(flow: Flow) -> None:
    result = flow.fail.s(7).on_error(flow.on_error.s()).delay()
    flow.run()
    assert flow.logged("on_error") == [result.id]
    assert [c.id for c in result.children] == [
        c.id for c in result.children if c.get(timeout=1) == result.id
    ]


def test_three_parameter_errback_gets_request_exception_and_traceback(flow: Flow) -> None:
    result = flow.fail.apply_async((7,), link_error=flow.on_error_full.s())
    flow.run()
    ((request, exc, traceback),) = flow.logged("on_error_full")
    assert isinstance(request, Request)
    assert request.id == result.id
    assert request.task == "flow.fail"
    assert request.args == [7]
    assert isinstance(exc, Boom) and exc.args == ("failed with (7,)",)
    assert traceback is not None and "raise Boom" in traceback


def test_an_errback_with_its_own_argument_keeps_the_one_parameter_form(flow: Flow) -> None:
    result = flow.fail.apply_async((1,), link_error=flow.on_error_tagged.s("nightly"))
    flow.run()
    assert flow.logged("on_error_tagged") == [(result.id, "nightly")]


def test_a_failed_step_stops_the_chain_and_runs_its_errback(flow: Flow) -> None:
    workflow = chain(flow.add.s(1, 1), flow.fail.s(), flow.mul.s(10), flow.log_result.s())
    workflow.link_error(flow.on_error.s())
    result = workflow.apply_async()
    flow.run()
    failed_step = result.parent.parent
    assert flow.logged("on_error") == [failed_step.id]
    assert flow.logged("log_result") == []
    # The steps that never ran end with the same error, so waiting on them never hangs.
    with pytest.raises(Boom):
        result.get(timeout=1)
    assert result.parent.state == states.FAILURE
    assert result.parent.parent.parent.get(timeout=1) == 2


def test_a_failed_member_fails_the_chord_at_once(flow: Flow) -> None:
    header = [flow.add.s(1, 1), flow.fail.s(), flow.add.s(2, 2)]
    body = flow.tsum.s().on_error(flow.on_error.s())
    result = chord(header, body)()
    flow.run()
    assert result.state == states.FAILURE
    with pytest.raises(ChordError, match=r"Dependency .* raised .*Boom"):
        result.get(timeout=1)
    assert flow.logged("on_error") == [result.id]
    assert flow.app.backend.get(result.id).meta["task"] == "flow.tsum"  # type: ignore[union-attr]


def test_a_failed_chord_runs_a_three_parameter_errback_too(flow: Flow) -> None:
    body = flow.tsum.s().on_error(flow.on_error_full.s())
    result = chord([flow.fail.s(), flow.add.s(1, 1)], body)()
    flow.run()
    ((request, exc, _),) = flow.logged("on_error_full")
    assert request.id == result.id
    assert isinstance(exc, ChordError)


def test_two_failed_members_fail_the_chord_once(flow: Flow) -> None:
    body = flow.tsum.s().on_error(flow.on_error.s())
    result = chord([flow.fail.s(), flow.fail.s()], body)()
    flow.run()
    assert result.failed()
    assert flow.logged("on_error") == [result.id]


def test_a_group_errback_runs_for_each_failed_member(flow: Flow) -> None:
    workflow = group(flow.fail.s(1), flow.add.s(1, 1), flow.fail.s(2))
    workflow.link_error(flow.on_error.s())
    result = workflow()
    flow.run()
    assert sorted(flow.logged("on_error")) == sorted([result[0].id, result[2].id])
    assert result.completed_count() == 1
    with pytest.raises(Boom):
        result.get(timeout=1)
    assert [type(v).__name__ for v in result.get(timeout=1, propagate=False)] == [
        "Boom",
        "int",
        "Boom",
    ]


def test_a_failed_step_of_a_chord_member_chain_fails_the_chord(flow: Flow) -> None:
    member = chain(flow.add.s(1, 1), flow.fail.s(), flow.add.s(1))
    result = chord([member, flow.add.s(3, 3)], flow.tsum.s())()
    flow.run()
    with pytest.raises(ChordError):
        result.get(timeout=1)


def test_a_chord_body_failure_is_the_body_s_own(flow: Flow) -> None:
    result = chord([flow.add.s(1, 1)], flow.fail.s())()
    flow.run()
    with pytest.raises(Boom, match=r"failed with \(\[2\],\)"):
        result.get(timeout=1)


def test_a_follow_up_that_cannot_be_sent_fails_the_rest_not_the_worker(flow: Flow) -> None:
    flow.app.conf.message_max_bytes = 4000
    big = flow.mul.s("x", 5000)  # a small message whose result is too big to pass on
    result = (big | flow.identity.s() | flow.identity.s())()
    flow.run()
    assert result.parent.parent.get(timeout=1) == "x" * 5000
    with pytest.raises(Exception, match="message_max_bytes"):
        result.parent.get(timeout=1)
    with pytest.raises(Exception, match="message_max_bytes"):
        result.get(timeout=1)
    assert flow.add.delay(1, 1) and flow.run() == 1  # the worker goes on
