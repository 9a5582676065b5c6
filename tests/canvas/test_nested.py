"""Nested canvases finish: chains of groups, groups of chains, chords of chains and of chords."""

from __future__ import annotations

from celeriac import AsyncResult, GroupResult, chain, chord, group

from .conftest import Flow


def test_a_chain_of_groups(flow: Flow) -> None:
    add, tsum = flow.add, flow.tsum
    workflow = chain(
        add.s(1, 1),
        group(add.s(1), add.s(2)),
        tsum.s(),
        group(add.s(10), add.s(20)),
        tsum.s(),
    )
    result = workflow()
    flow.run()
    # 2 -> [3, 4] -> 7 -> [17, 27] -> 44
    assert result.get(timeout=1) == 44


def test_a_chain_ending_in_a_group(flow: Flow) -> None:
    result = (flow.add.s(1, 1) | group(flow.add.s(1), flow.mul.s(10)))()
    flow.run()
    assert isinstance(result, GroupResult)
    assert result.get(timeout=1) == [3, 20]
    assert isinstance(result.parent, AsyncResult) and result.parent.get(timeout=1) == 2


def test_two_groups_in_a_row(flow: Flow) -> None:
    result = (group(flow.add.s(1, 1), flow.add.s(2, 2)) | group(flow.tsum.s(), flow.identity.s()))()
    flow.run()
    assert result.get(timeout=1) == [6, [2, 4]]


def test_a_group_of_chains(flow: Flow) -> None:
    add, mul = flow.add, flow.mul
    result = group(chain(add.s(i, i), mul.s(10)) for i in range(4))()
    flow.run()
    assert result.get(timeout=1) == [0, 20, 40, 60]
    assert all(r.parent is not None for r in result)


def test_groups_inside_a_group_are_flattened(flow: Flow) -> None:
    add = flow.add
    result = group(group(add.s(1, 1), add.s(2, 2)), add.s(3, 3))()
    flow.run()
    assert result.get(timeout=1) == [2, 4, 6]


def test_a_chord_whose_header_holds_chains(flow: Flow) -> None:
    add, mul, tsum = flow.add, flow.mul, flow.tsum
    header = [chain(add.s(i, i), mul.s(10), add.s(1)) for i in range(5)]
    result = chord(header, tsum.s())()
    flow.run()
    assert result.get(timeout=1) == sum(20 * i + 1 for i in range(5))


def test_a_chord_member_chain_ending_in_a_group(flow: Flow) -> None:
    member = chain(flow.add.s(1, 1), group(flow.add.s(1), flow.add.s(2)))
    result = chord([member, flow.add.s(5, 5)], flow.identity.s())()
    flow.run()
    assert result.get(timeout=1) == [[3, 4], 10]


def test_a_chord_inside_a_chain(flow: Flow) -> None:
    add, tsum, mul = flow.add, flow.tsum, flow.mul
    workflow = chain(
        add.s(1, 1),
        chord([add.s(1), add.s(2), add.s(3)], tsum.s()),
        mul.s(2),
    )
    result = workflow()
    flow.run()
    # 2 -> [3, 4, 5] -> 12 -> 24
    assert result.get(timeout=1) == 24


def test_a_chord_whose_header_holds_chords(flow: Flow) -> None:
    add, tsum = flow.add, flow.tsum
    inner = [chord([add.s(i, 1), add.s(i, 2)], tsum.s()) for i in range(3)]
    result = chord(inner, tsum.s())()
    flow.run()
    assert result.get(timeout=1) == sum(2 * i + 3 for i in range(3))


def test_a_chord_whose_body_is_a_group(flow: Flow) -> None:
    result = chord([flow.add.s(1, 1), flow.add.s(2, 2)], group(flow.tsum.s(), flow.identity.s()))()
    flow.run()
    assert result.get(timeout=1) == [6, [2, 4]]


def test_a_chord_whose_body_is_a_chain(flow: Flow) -> None:
    body = flow.tsum.s() | flow.mul.s(3)
    result = chord([flow.add.s(1, 1), flow.add.s(2, 2)], body)()
    flow.run()
    assert result.get(timeout=1) == 18


def test_an_empty_chord_header_calls_the_body_with_nothing(flow: Flow) -> None:
    result = chord([], flow.tsum.s())()
    flow.run()
    assert result.get(timeout=1) == 0


def test_deep_nesting_finishes(flow: Flow) -> None:
    add, tsum, identity = flow.add, flow.tsum, flow.identity
    # A group inside a chord's header is flattened into it, as in Celery.
    leaf = chord([chain(add.si(1, 1), add.s(1)), group(add.si(2, 2), add.si(3, 3))], identity.s())
    workflow = chain(add.s(0, 0), group(chain(add.s(1), add.s(1)), add.s(5)), tsum.s(), leaf)
    result = workflow()
    flow.run()
    # 0 -> [2, 5] -> 7 -> the leaf's header ignores it -> [3, 4, 6]
    assert result.get(timeout=1) == [3, 4, 6]
    assert result.parent.parent.get(timeout=1) == 7


def test_a_chord_without_body_in_a_chain_takes_the_next_step(flow: Flow) -> None:
    result = chain(chord([flow.add.s(1, 1), flow.add.s(2, 2)]), flow.tsum.s(), flow.mul.s(2))()
    flow.run()
    assert result.get(timeout=1) == 12
