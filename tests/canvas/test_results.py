"""``GroupResult``, and ``parent`` / ``children`` of results."""

from __future__ import annotations

import pytest

from celeriac import AsyncResult, GroupResult, TimeoutError, chain, chord, group

from .conftest import Boom, Flow


def test_group_result_before_and_after(flow: Flow) -> None:
    result = group(flow.add.s(i, i) for i in range(4))()
    assert len(result) == 4
    assert [type(r) for r in result] == [AsyncResult] * 4
    assert result.results == list(result)
    assert not result.ready() and result.waiting()
    assert result.completed_count() == 0
    with pytest.raises(TimeoutError):
        result.get(timeout=0.05)
    flow.run()
    assert result.ready() and not result.waiting()
    assert result.successful() and not result.failed()
    assert result.completed_count() == 4
    assert result.get(timeout=1) == [0, 2, 4, 6]
    assert result.join(timeout=1) == [0, 2, 4, 6]
    seen: list[tuple[str, int]] = []
    assert result.join(timeout=1, callback=lambda tid, v: seen.append((tid, v))) == []
    assert seen == [(r.id, v) for r, v in zip(result, [0, 2, 4, 6], strict=True)]
    assert result[1].get(timeout=1) == 2


def test_group_result_with_a_failure(flow: Flow) -> None:
    result = group(flow.add.s(1, 1), flow.fail.s())()
    flow.run()
    assert result.ready() and result.failed() and not result.successful()
    assert result.completed_count() == 1
    with pytest.raises(Boom):
        result.get(timeout=1)
    values = result.get(timeout=1, propagate=False)
    assert values[0] == 2 and isinstance(values[1], Boom)


def test_a_group_result_is_saved_and_restored(flow: Flow) -> None:
    result = group(flow.add.s(1, 1), chain(flow.add.s(2, 2), flow.add.s(1)))()
    flow.run()
    restored = GroupResult.restore(result.id, app=flow.app)
    assert restored is not None
    assert restored == result
    assert restored.get(timeout=1) == [2, 5]
    restored.delete()
    assert GroupResult.restore(result.id, app=flow.app) is None


def test_save_and_restore_by_hand(flow: Flow) -> None:
    first, second = flow.add.delay(1, 1), flow.add.delay(2, 2)
    made = GroupResult("by-hand", [first, GroupResult("inner", [second], flow.app)], flow.app)
    made.save()
    flow.run()
    restored = GroupResult.restore("by-hand", app=flow.app)
    assert restored is not None and restored.get(timeout=1) == [2, [4]]


def test_a_chain_result_leads_back_to_the_first_step(flow: Flow) -> None:
    first = flow.add.s(1, 1)
    result = chain(first, flow.mul.s(2), flow.add.s(3))()
    steps = [result, result.parent, result.parent.parent]
    assert all(isinstance(s, AsyncResult) for s in steps)
    assert result.parent.parent.parent is None
    flow.run()
    assert [s.get(timeout=1) for s in steps] == [7, 4, 2]


def test_the_ids_are_given_when_the_chain_is_applied(flow: Flow) -> None:
    workflow = chain(flow.add.s(1, 1), flow.add.s(1))
    one, two = workflow(), workflow()
    assert one.id != two.id
    assert one.parent.id != two.parent.id
    flow.run()
    assert one.get(timeout=1) == two.get(timeout=1) == 3


def test_freeze_gives_the_ids_before_sending(flow: Flow) -> None:
    sig = flow.add.s(1, 1)
    frozen = sig.freeze()
    assert sig.id == frozen.id
    assert sig.delay().id == frozen.id
    workflow = chain(flow.add.s(1, 1), flow.add.s(1))
    planned = workflow.freeze()
    assert workflow.apply_async().id == planned.id


def test_a_chord_result_has_the_header_as_parent(flow: Flow) -> None:
    result = chord([flow.add.s(1, 1), flow.add.s(2, 2)], flow.tsum.s())()
    assert isinstance(result.parent, GroupResult)
    flow.run()
    assert result.parent.get(timeout=1) == [2, 4]
    assert result.get(timeout=1) == 6


def test_children_are_the_follow_ups_and_the_calls_sent(flow: Flow) -> None:
    result = chain(flow.spawn.s(3), flow.add.s(1))()
    flow.run()
    first = result.parent
    assert isinstance(first, AsyncResult)
    children = first.children
    assert len(children) == 4
    assert children[-1].id == result.id  # the next step of the chain comes after the calls sent
    assert sorted(c.get(timeout=1) for c in children[:3]) == [0, 2, 4]
    assert result.children == []


def test_children_of_a_step_followed_by_a_group(flow: Flow) -> None:
    result = (flow.add.s(1, 1) | group(flow.add.s(1), flow.add.s(2)))()
    flow.run()
    assert result.parent is not None
    assert [c.id for c in result.parent.children] == [r.id for r in result]
