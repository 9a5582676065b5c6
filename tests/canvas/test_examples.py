"""The issue's examples, verbatim where they can be, on every broker, with an in-process worker."""

from __future__ import annotations

import pytest

from celeriac import (
    AsyncResult,
    GroupResult,
    Signature,
    chain,
    chord,
    chunks,
    group,
    signature,
    xmap,
    xstarmap,
)

from .conftest import Flow


def test_chain_of_two(flow: Flow) -> None:
    add, mul = flow.add, flow.mul
    result = chain(add.s(4, 4) | mul.s(8))()
    flow.run()
    assert result.get(timeout=1) == 64


def test_immutable_step_ignores_the_parent_result(flow: Flow) -> None:
    add = flow.add
    result = (add.s(4, 4) | add.si(5, 6))()
    flow.run()
    assert result.get(timeout=1) == 11
    assert result.parent is not None and result.parent.get(timeout=1) == 8


def test_chord_of_a_hundred(flow: Flow) -> None:
    add, tsum = flow.add, flow.tsum
    result = chord(group(add.s(i, i) for i in range(100)), tsum.s())()
    flow.run()
    assert result.get(timeout=1) == 9900


def test_group_of_ten(flow: Flow) -> None:
    add = flow.add
    result = group(add.s(i, i) for i in range(10))()
    assert isinstance(result, GroupResult)
    flow.run()
    assert result.get(timeout=1) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def test_map_is_one_task_over_every_item(flow: Flow) -> None:
    xsum = flow.xsum
    sig = xsum.map([range(10), range(100)])
    assert isinstance(sig, xmap)
    result = sig.apply_async()
    assert flow.run() == 1
    assert result.get(timeout=1) == [45, 4950]


def test_starmap_is_one_task_over_every_argument_tuple(flow: Flow) -> None:
    add = flow.add
    sig = add.starmap(zip(range(10), range(10), strict=True))
    assert isinstance(sig, xstarmap)
    result = sig.delay()
    assert flow.run() == 1
    assert result.get(timeout=1) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def test_chunks_split_the_items_into_tasks(flow: Flow) -> None:
    add = flow.add
    a, b = range(25), range(100, 125)
    sig = add.chunks(zip(a, b, strict=True), 10)
    assert isinstance(sig, chunks)
    result = sig()
    assert isinstance(result, GroupResult) and len(result) == 3
    assert flow.run() == 3
    assert result.get(timeout=1) == [
        [100 + 2 * i for i in range(10)],
        [100 + 2 * i for i in range(10, 20)],
        [100 + 2 * i for i in range(20, 25)],
    ]


def test_chunks_group_is_a_group_of_starmaps(flow: Flow) -> None:
    add = flow.add
    made = add.chunks([(1, 1), (2, 2), (3, 3)], 2).group()
    assert isinstance(made, group)
    assert [type(t) for t in made.tasks] == [xstarmap, xstarmap]
    result = made.apply_async()
    flow.run()
    assert result.get(timeout=1) == [[2, 4], [6]]


def test_link_and_link_error_options(flow: Flow) -> None:
    add, log_result, on_error = flow.add, flow.log_result, flow.on_error
    ok = add.apply_async((2, 2), link=log_result.s(), link_error=on_error.s())
    flow.run()
    assert ok.get(timeout=1) == 4
    assert flow.logged("log_result") == [4]
    assert flow.logged("on_error") == []
    failed = flow.fail.apply_async((1,), link=log_result.s(), link_error=on_error.s())
    flow.run()
    assert failed.failed()
    assert flow.logged("log_result") == [4]
    assert flow.logged("on_error") == [failed.id]


def test_partials_options_and_shortcuts(flow: Flow) -> None:
    add = flow.add
    partial = add.s(2).delay(4)
    later = add.s(2, 2).set(countdown=1)
    assert later.options == {"countdown": 1}
    flow.run()
    assert partial.get(timeout=1) == 6
    base = add.s(2)
    copy = base.clone((5,), priority=3)
    assert copy.args == (5, 2) and copy.options == {"priority": 3}
    assert base.args == (2,) and base.options == {}
    assert add.si(1, 1).clone((99,)).args == (1, 1)


def test_invert_sends_and_waits(flow: Flow) -> None:
    flow.app.conf.task_always_eager = True
    assert ~flow.add.s(2, 3) == 5
    assert ~(flow.add.s(1, 1) | flow.mul.s(10)) == 20


def test_chord_header_then_body(flow: Flow) -> None:
    add, tsum = flow.add, flow.tsum
    header_tasks = [add.s(i, i) for i in range(5)]
    callback = tsum.s()
    result = chord(header_tasks)(callback)
    flow.run()
    assert result.get(timeout=1) == 20


def test_app_signature_sends_by_name(flow: Flow) -> None:
    sig = flow.app.signature("flow.add", args=(2, 3), priority=5)
    assert isinstance(sig, Signature)
    assert sig.options == {"priority": 5}
    result = sig.delay()
    flow.run()
    assert result.get(timeout=1) == 5
    assert signature("flow.add", (1, 1), app=flow.app).delay().id


def test_a_partial_chain_takes_its_first_arguments_when_called(flow: Flow) -> None:
    partial = chain(flow.add.s(4) | flow.mul.s(8))
    result = partial(4)
    flow.run()
    assert result.get(timeout=1) == 64


def test_a_partial_group_gives_its_arguments_to_every_member(flow: Flow) -> None:
    result = group(flow.add.s(i) for i in range(3))(10)
    flow.run()
    assert result.get(timeout=1) == [10, 11, 12]


@pytest.mark.parametrize("broker_kind", ["memory"], indirect=True)
def test_group_or_task_makes_a_chord(flow: Flow) -> None:
    made = group(flow.add.s(1, 1), flow.add.s(2, 2)) | flow.tsum.s()
    assert isinstance(made, chord)
    result = made()
    flow.run()
    assert isinstance(result, AsyncResult)
    assert result.get(timeout=1) == 6
