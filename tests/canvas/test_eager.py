"""Eager mode (``task_always_eager``, ``apply()``) runs chains, groups, chords and links here."""

from __future__ import annotations

import pytest

from celeriac import ChordError, EagerResult, GroupResult, Request, chain, chord, group

from .conftest import Boom, Flow

pytestmark = pytest.mark.parametrize("broker_kind", ["memory"], indirect=True)


@pytest.fixture
def eager(flow: Flow) -> Flow:
    flow.app.conf.task_always_eager = True
    return flow


def test_examples_run_here(eager: Flow) -> None:
    add, mul, tsum = eager.add, eager.mul, eager.tsum
    assert chain(add.s(4, 4) | mul.s(8))().get() == 64
    assert (add.s(4, 4) | add.si(5, 6))().get() == 11
    assert chord(group(add.s(i, i) for i in range(100)), tsum.s())().get() == 9900
    assert group(add.s(i, i) for i in range(10))().get() == [2 * i for i in range(10)]
    assert eager.xsum.map([range(10), range(100)]).delay().get() == [45, 4950]
    assert add.starmap([(1, 2), (3, 4)]).delay().get() == [3, 7]
    assert add.chunks([(1, 2), (3, 4), (5, 6)], 2)().get() == [[3, 7], [11]]
    assert chord([add.s(1, 1)])(tsum.s()).get() == 2
    assert eager.app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


def test_nested_forms_run_here(eager: Flow) -> None:
    add, tsum = eager.add, eager.tsum
    result = chain(add.s(1, 1), group(add.s(1), add.s(2)), tsum.s(), chord([add.s(1)], tsum.s()))()
    assert result.get() == 8
    assert group(chain(add.s(i, i), add.s(1)) for i in range(3))().get() == [1, 3, 5]


def test_results_are_linked_as_when_sent(eager: Flow) -> None:
    result = chain(eager.add.s(1, 1), eager.add.s(1))()
    assert isinstance(result, EagerResult)
    assert result.parent is not None and result.parent.get() == 2
    grouped = group(eager.add.s(1, 1))()
    assert isinstance(grouped, GroupResult)


def test_a_failed_step_stops_the_chain(eager: Flow) -> None:
    result = chain(eager.add.s(1, 1), eager.fail.s(), eager.log_result.s())()
    assert result.failed()
    with pytest.raises(Boom):
        result.get()
    assert eager.logged("log_result") == []


def test_a_failed_member_fails_the_chord_and_runs_its_errback(eager: Flow) -> None:
    body = eager.tsum.s().on_error(eager.on_error.s())
    result = chord([eager.add.s(1, 1), eager.fail.s()], body)()
    with pytest.raises(ChordError):
        result.get()
    assert eager.logged("on_error") == [result.id]


def test_links_and_both_errback_forms_run_here(eager: Flow) -> None:
    eager.add.apply_async((1, 2), link=eager.log_result.s())
    assert eager.logged("log_result") == [3]
    failed = eager.fail.apply_async((5,), link_error=[eager.on_error.s(), eager.on_error_full.s()])
    assert eager.logged("on_error") == [failed.id]
    ((request, exc, traceback),) = eager.logged("on_error_full")
    assert isinstance(request, Request) and request.id == failed.id and request.args == [5]
    assert isinstance(exc, Boom) and "Boom" in (traceback or "")


def test_apply_runs_a_chain_without_always_eager(flow: Flow) -> None:
    assert chain(flow.add.s(1, 1), flow.mul.s(3)).apply().get() == 6
    assert chord([flow.add.s(1, 1), flow.add.s(2, 2)], flow.tsum.s()).apply().get() == 6
    assert flow.add.s(1, 1).apply(link=flow.log_result.s()).get() == 2
    # not eager: a callback of apply() is sent, as in Celery
    assert flow.app.broker.queue_lengths(["celeriac"]) == {"celeriac": 1}
