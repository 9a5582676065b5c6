"""DAG runs: argument passing, failure branches, run_on_failure, retries, state from anywhere."""

from __future__ import annotations

import pytest

from celeriac import ChordError, DagRun, Task, chain, dag, group, states
from celeriac.canvas import DagRunNotFound

from .conftest import Boom, Flow


def test_the_issue_s_diamond(flow: Flow) -> None:
    extract, join, publish = flow.identity, flow.identity, flow.log_result
    report = dag("daily_report", app=flow.app)
    users = report.add(extract.s("users"), name="users")
    orders = report.add(extract.s("orders"), name="orders")
    joined = report.add(join.s(), after=[users, orders], name="joined")
    report.add(publish.s(), after=[joined], name="publish")
    run = report.apply_async()
    assert run.state() == "RUNNING"
    assert run.nodes() == {
        "users": "PENDING",
        "orders": "PENDING",
        "joined": "WAITING",
        "publish": "WAITING",
    }
    flow.run()
    expected = {"users": "users", "orders": "orders"}
    assert run.get(timeout=1) == {
        "users": "users",
        "orders": "orders",
        "joined": expected,
        "publish": expected,
    }
    assert run.state() == states.SUCCESS
    assert set(run.nodes().values()) == {states.SUCCESS}
    assert flow.logged("log_result") == [expected]


def test_arguments_by_number_of_parents(flow: Flow) -> None:
    flow_ = dag("args", app=flow.app)
    root = flow_.add(flow.add.s(1, 2), name="root")
    one = flow_.add(flow.mul.s(10), after=[root], name="one")
    other = flow_.add(flow.add.s(1, 1), name="other")
    two = flow_.add(flow.identity.s(), after=[one, other], name="two")
    flow_.add(flow.add.si(5, 5), after=[two], name="immutable")
    run = flow_.apply_async()
    flow.run()
    assert run.get(timeout=1) == {
        "root": 3,
        "one": 30,
        "other": 2,
        "two": {"one": 30, "other": 2},
        "immutable": 10,
    }


def test_default_names_and_checks(flow: Flow) -> None:
    made = dag("names", app=flow.app)
    first = made.add(flow.add.s(1, 1))
    second = made.add(flow.add.s(2, 2), after=[first])
    assert (first.name, second.name) == ("add", "add_2")
    assert made.nodes == ["add", "add_2"]
    with pytest.raises(ValueError, match="no node named"):
        made.add(flow.add.s(1, 1), after=["nope"])
    with pytest.raises(ValueError, match="already"):
        made.add(flow.add.s(1, 1), name="add")
    with pytest.raises(TypeError):
        made.add(flow.add)  # type: ignore[arg-type]


def test_a_failed_branch_leaves_the_others_complete_and_retry_finishes(flow: Flow) -> None:
    switch = {"fail": True}

    @flow.app.task(name="flow.flaky")
    def flaky(value: int) -> int:
        if switch["fail"]:
            raise Boom("not yet")
        return value * 100

    made = dag("branches", app=flow.app)
    root = made.add(flow.add.s(1, 1), name="root")
    good = made.add(flow.add.s(1), after=[root], name="good")
    made.add(flow.add.s(1), after=[good], name="good_child")
    bad = made.add(flaky.s(), after=[root], name="bad")
    below = made.add(flow.add.s(1), after=[bad], name="below")
    made.add(flow.identity.s(), after=[below, good], name="joined")
    run = made.apply_async()
    flow.run()
    assert run.nodes() == {
        "root": states.SUCCESS,
        "good": states.SUCCESS,
        "good_child": states.SUCCESS,
        "bad": states.FAILURE,
        "below": "UPSTREAM_FAILED",
        "joined": "UPSTREAM_FAILED",
    }
    assert run.state() == states.FAILURE
    with pytest.raises(Boom):
        run.get(timeout=1)
    values = run.get(timeout=1, propagate=False)
    assert isinstance(values["bad"], Boom)
    assert isinstance(values["below"], ChordError)
    runs_before = len(flow.calls)

    switch["fail"] = False
    assert run.retry_failed() == ["bad", "below", "joined"]
    assert run.nodes()["bad"] == states.PENDING
    assert run.nodes()["below"] == "WAITING"
    flow.run()
    assert run.state() == states.SUCCESS
    assert run.get(timeout=1) == {
        "root": 2,
        "good": 3,
        "good_child": 4,
        "bad": 200,
        "below": 201,
        "joined": {"below": 201, "good": 3},
    }
    assert len(flow.calls) == runs_before  # nothing that succeeded ran again
    by_name = {node.name: node for node in run.status()}
    assert by_name["bad"].attempt == 2 and by_name["root"].attempt == 1
    assert run.retry_failed() == []


def test_run_on_failure_gets_the_exception(flow: Flow) -> None:
    made = dag("cleanup", app=flow.app)
    broken = made.add(flow.fail.s(), name="broken")
    fine = made.add(flow.add.s(1, 1), name="fine")
    made.add(flow.describe.s(), after=[broken], run_on_failure=True, name="single")
    made.add(flow.describe.s(), after=[broken, fine], run_on_failure=True, name="both")
    run = made.apply_async()
    flow.run()
    single, both = flow.logged("describe")
    assert isinstance(single, Boom)
    assert isinstance(both["broken"], Boom) and both["fine"] == 2
    assert run.get(timeout=1, propagate=False)["single"] == "Boom"
    assert run.nodes()["both"] == states.SUCCESS


def test_run_on_failure_runs_after_an_upstream_failure_too(flow: Flow) -> None:
    made = dag("chain_of_failures", app=flow.app)
    broken = made.add(flow.fail.s(), name="broken")
    skipped = made.add(flow.add.s(1), after=[broken], name="skipped")
    made.add(flow.describe.s(), after=[skipped], run_on_failure=True, name="last")
    run = made.apply_async()
    flow.run()
    (got,) = flow.logged("describe")
    assert isinstance(got, ChordError)
    assert run.nodes()["last"] == states.SUCCESS


def test_nodes_can_be_chains_and_groups(flow: Flow) -> None:
    made = dag("canvases", app=flow.app)
    pair = made.add(group(flow.add.s(1, 1), flow.add.s(2, 2)), name="pair")
    summed = made.add(chain(flow.tsum.s(), flow.mul.s(10)), after=[pair], name="summed")
    made.add(flow.add.s(1), after=[summed], name="last")
    run = made.apply_async()
    flow.run()
    assert run.get(timeout=1) == {"pair": [2, 4], "summed": 60, "last": 61}


def test_a_failure_inside_a_chain_node_fails_the_node(flow: Flow) -> None:
    made = dag("chain_node", app=flow.app)
    node = made.add(chain(flow.add.s(1, 1), flow.fail.s(), flow.add.s(1)), name="node")
    made.add(flow.add.s(1), after=[node], name="after")
    run = made.apply_async()
    flow.run()
    assert run.nodes() == {"node": states.FAILURE, "after": "UPSTREAM_FAILED"}


def test_a_run_is_seen_from_another_app(flow: Flow) -> None:
    made = dag("seen", app=flow.app)
    made.add(flow.add.s(1, 1), name="only")
    run = made.apply_async()
    flow.run()
    other = type(flow.app)("other", broker=flow.app.broker, backend=flow.app.backend)
    assert DagRun(run.id, other).nodes() == {"only": states.SUCCESS}
    assert DagRun(run.id, other).get(timeout=1) == {"only": 2}
    with pytest.raises(DagRunNotFound):
        DagRun("no-such-run", other).state()


def test_an_empty_dag_is_done(flow: Flow) -> None:
    run = dag("empty", app=flow.app).apply_async()
    assert run.state() == states.SUCCESS
    assert run.get(timeout=1) == {}


def test_a_timeout_names_the_node(flow: Flow) -> None:
    made = dag("slow", app=flow.app)
    made.add(flow.add.s(1, 1), name="never_run")
    run = made.apply_async()
    with pytest.raises(TimeoutError, match="never_run"):
        run.get(timeout=0.05)


def test_a_node_is_released_once_even_if_its_parents_report_twice(flow: Flow) -> None:
    from celeriac.canvas.nodes import node_finished

    made = dag("twice", app=flow.app)
    a = made.add(flow.add.s(1, 1), name="a")
    b = made.add(flow.add.s(2, 2), name="b")
    made.add(flow.identity.s(), after=[a, b], name="c")
    run = made.apply_async()
    flow.run()
    for name in ("a", "b", "a"):
        node_finished(flow.app, {"run": run.id, "node": name, "attempt": 1})
    assert flow.app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    assert run.get(timeout=1)["c"] == {"a": 2, "b": 4}


def test_eager_dag(flow: Flow) -> None:
    flow.app.conf.task_always_eager = True
    made = dag("eager", app=flow.app)
    a = made.add(flow.add.s(1, 1), name="a")
    bad = made.add(flow.fail.s(), after=[a], name="bad")
    made.add(flow.describe.s(), after=[bad], run_on_failure=True, name="c")
    made.add(flow.add.s(1), after=[bad], name="d")
    run = made.apply_async()
    assert run.nodes() == {
        "a": states.SUCCESS,
        "bad": states.FAILURE,
        "c": states.SUCCESS,
        "d": "UPSTREAM_FAILED",
    }
    assert isinstance(flow.logged("describe")[0], Boom)


def test_task_type_is_exposed(flow: Flow) -> None:
    assert isinstance(flow.add.s(1, 1).type, Task)


def test_chunks_and_maps_as_nodes(flow: Flow) -> None:
    made = dag("maps", app=flow.app)
    pairs = made.add(flow.add.chunks([(1, 1), (2, 2), (3, 3)], 2), name="pairs")
    made.add(flow.xsum.map([[1, 2], [3]]), after=[pairs], name="sums")
    run = made.apply_async()
    flow.run()
    assert run.get(timeout=1) == {"pairs": [[2, 4], [6]], "sums": [3, 3]}


def test_an_immutable_run_on_failure_node_keeps_its_own_arguments(flow: Flow) -> None:
    made = dag("immutable_cleanup", app=flow.app)
    broken = made.add(flow.fail.s(), name="broken")
    own = {"exc_type": "x", "note": "a dict of its own"}
    made.add(flow.describe.si(own), after=[broken], run_on_failure=True, name="cleanup")
    run = made.apply_async()
    flow.run()
    assert flow.logged("describe") == [own]
    assert run.nodes()["cleanup"] == states.SUCCESS
