"""Retrying chosen nodes of a DAG run (``retry_failed(nodes=...)``), and the index of recent
runs that lets a run be found without its id (``recent_runs``); in process on each broker of
``conftest.BROKERS``, and once with a real ``celeriac -A flows worker`` on SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celeriac, Signature, Task, dag, states
from celeriac.canvas import (
    DagNodeError,
    DagNodeNotFailed,
    DagRun,
    UnknownDagNode,
    recent_runs,
)
from celeriac.canvas.dag_index import RUNS_KEPT, newest
from support.processes import WorkerProcess
from support.waiting import wait_for

from .conftest import Boom, Flow


class Switches:
    """Tasks that fail until their switch is turned off, counting their calls."""

    def __init__(self, flow: Flow) -> None:
        self.failing: dict[str, bool] = {}
        self.calls: dict[str, int] = {}

        @flow.app.task(name="flow.flaky")
        def flaky(*parents: Any, key: str) -> str:
            self.calls[key] = self.calls.get(key, 0) + 1
            if self.failing.get(key, True):
                raise Boom(f"{key} not yet")
            return key

        self.flaky: Task[Any, Any] = flaky

    def node(self, key: str) -> Any:
        return self.flaky.s(key=key)


def _two_broken_branches(flow: Flow, switches: Switches) -> DagRun:
    """root -> a -> a_child, root -> b -> b_child, both after a_child and b_child."""
    made = dag("branches", app=flow.app)
    root = made.add(switches.node("root"), name="root")
    a = made.add(switches.node("a"), after=[root], name="a")
    a_child = made.add(switches.node("a_child"), after=[a], name="a_child")
    b = made.add(switches.node("b"), after=[root], name="b")
    b_child = made.add(switches.node("b_child"), after=[b], name="b_child")
    made.add(switches.node("both"), after=[a_child, b_child], name="both")
    for key in ("root", "a_child", "b_child", "both"):
        switches.failing[key] = False
    run = made.apply_async()
    flow.run()
    return run


def _attempts(run: DagRun) -> dict[str, int]:
    return {node.name: node.attempt for node in run.status()}


def test_one_failed_node_is_retried_with_what_waits_on_it_only(flow: Flow) -> None:
    switches = Switches(flow)
    run = _two_broken_branches(flow, switches)
    assert run.nodes() == {
        "root": states.SUCCESS,
        "a": states.FAILURE,
        "a_child": "UPSTREAM_FAILED",
        "b": states.FAILURE,
        "b_child": "UPSTREAM_FAILED",
        "both": "UPSTREAM_FAILED",
    }
    switches.failing["a"] = False
    # "both" also waits on b's branch, which stays failed: it is not retried.
    assert run.retry_failed(["a"]) == ["a", "a_child"]
    assert run.nodes()["a"] == states.PENDING
    assert run.nodes()["a_child"] == "WAITING"
    flow.run()
    assert run.nodes() == {
        "root": states.SUCCESS,
        "a": states.SUCCESS,
        "a_child": states.SUCCESS,
        "b": states.FAILURE,
        "b_child": "UPSTREAM_FAILED",
        "both": "UPSTREAM_FAILED",
    }
    assert _attempts(run) == {
        "root": 1,
        "a": 2,
        "a_child": 2,
        "b": 1,
        "b_child": 1,
        "both": 1,
    }
    assert switches.calls == {"root": 1, "a": 2, "a_child": 1, "b": 1}
    assert run.state() == states.FAILURE

    # Then the rest, by name: both runs now, with a_child's value counted as done.
    switches.failing["b"] = False
    assert run.retry_failed("b") == ["b", "b_child", "both"]
    flow.run()
    assert run.state() == states.SUCCESS
    assert run.get(timeout=1)["both"] == "both"
    assert switches.calls == {"root": 1, "a": 2, "a_child": 1, "b": 2, "b_child": 1, "both": 1}


def test_only_known_failed_nodes_are_taken_and_a_refusal_changes_nothing(flow: Flow) -> None:
    switches = Switches(flow)
    run = _two_broken_branches(flow, switches)
    before = _attempts(run)

    with pytest.raises(UnknownDagNode, match="no node named 'nope'") as unknown:
        run.retry_failed(["a", "nope"])
    assert unknown.value.nodes == ("nope",)
    with pytest.raises(DagNodeNotFailed, match=r"not 'root' \(SUCCESS\)") as succeeded:
        run.retry_failed(["a", "root"])
    assert succeeded.value.nodes == ("root",)
    with pytest.raises(DagNodeNotFailed, match="runs again with that parent"):
        run.retry_failed(["b_child"])
    # Both are ValueErrors (and celeriac errors), as a bad argument is.
    assert issubclass(UnknownDagNode, ValueError) and issubclass(DagNodeNotFailed, DagNodeError)
    assert _attempts(run) == before
    assert run.retry_failed([]) == []
    assert _attempts(run) == before

    # Named twice is named once.
    assert run.retry_failed(["b", "b"]) == ["b", "b_child"]


def test_a_node_that_runs_on_failure_is_retried_without_its_failed_parent(flow: Flow) -> None:
    switches = Switches(flow)
    made = dag("cleanup", app=flow.app)
    broken = made.add(flow.fail.s(), name="broken")
    made.add(switches.node("report"), after=[broken], run_on_failure=True, name="report")
    run = made.apply_async()
    flow.run()
    assert run.nodes() == {"broken": states.FAILURE, "report": states.FAILURE}

    switches.failing["report"] = False
    # Its parent failed and is not retried, but it has finished: the report runs at once.
    assert run.retry_failed(["report"]) == ["report"]
    assert run.nodes()["report"] == states.PENDING
    flow.run()
    assert run.nodes() == {"broken": states.FAILURE, "report": states.SUCCESS}
    assert _attempts(run) == {"broken": 1, "report": 2}


def test_eagerly_a_named_node_runs_at_once(flow: Flow) -> None:
    flow.app.conf.task_always_eager = True
    switches = Switches(flow)
    made = dag("eager", app=flow.app)
    first = made.add(switches.node("first"), name="first")
    made.add(switches.node("second"), after=[first], name="second")
    made.add(switches.node("other"), name="other")
    switches.failing["second"] = False
    run = made.apply_async()
    assert run.nodes() == {
        "first": states.FAILURE,
        "second": "UPSTREAM_FAILED",
        "other": states.FAILURE,
    }
    switches.failing["first"] = False
    assert run.retry_failed(["first"]) == ["first", "second"]
    assert run.nodes() == {
        "first": states.SUCCESS,
        "second": states.SUCCESS,
        "other": states.FAILURE,
    }


def test_recent_runs_list_every_way_of_applying_newest_first(flow: Flow) -> None:
    def one(name: str, task: Task[Any, Any]) -> Any:
        made = dag(name, app=flow.app)
        made.add(task.s(1, 1) if task is flow.add else task.s(), name="only")
        return made

    sent = one("sent", flow.add).apply_async()
    failed = one("failed", flow.fail).apply_async()
    flow.run()
    here = one("here", flow.add).apply()
    awaited = asyncio.run(one("awaited", flow.add).aapply_async())

    found = recent_runs(flow.app)
    assert [run.id for run in found] == [awaited.id, here.id, failed.id, sent.id]
    by_name = {run.name: run for run in found}
    assert by_name["sent"].state == states.SUCCESS
    assert by_name["sent"].counts == {states.SUCCESS: 1} and by_name["sent"].total == 1
    assert by_name["failed"].state == states.FAILURE
    assert by_name["awaited"].state == "RUNNING"
    assert by_name["awaited"].counts == {states.PENDING: 1}
    assert found[0].created >= found[-1].created
    assert [run.id for run in recent_runs(flow.app, limit=2)] == [awaited.id, here.id]


def test_the_index_keeps_the_newest_runs_only(flow: Flow) -> None:
    made = dag("many", app=flow.app)
    made.add(flow.add.s(1, 1), name="only")
    ids = [made.apply_async().id for _ in range(RUNS_KEPT * 2 + 30)]
    listed = newest(flow.app, limit=10_000)
    assert len(listed) == RUNS_KEPT
    assert [run_id for run_id, _ in listed] == ids[::-1][:RUNS_KEPT]
    # What readers read is two generations at most, whatever the number of runs.
    pointer = flow.app.backend.get_document("dag-runs")
    assert pointer == {"generation": 2}
    kept = flow.app.backend.set_members("dag-runs:2") | flow.app.backend.set_members("dag-runs:1")
    assert len(kept) == RUNS_KEPT + 30
    assert len(recent_runs(flow.app, limit=500)) == RUNS_KEPT


def test_a_node_retried_by_name_with_a_worker(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    def node(name: str, marker: Path | None = None) -> Signature:
        if marker is None:
            return client.signature("flows.stamp", (), {"name": name})
        return client.signature("flows.needs_marker", (), {"name": name, "path": str(marker)})

    a_marker, b_marker = tmp_path / "a", tmp_path / "b"
    made = dag("report", app=client)
    root = made.add(node("root"), name="root")
    a = made.add(node("a", a_marker), after=[root], name="a")
    made.add(node("a_child"), after=[a], name="a_child")
    made.add(node("b", b_marker), after=[root], name="b")
    with WorkerProcess(sqlite_url, "-c", "2", app="flows") as worker:
        run = made.apply_async()
        assert wait_for(lambda: run.state() != "RUNNING", 30), worker.output
        assert run.nodes() == {
            "root": states.SUCCESS,
            "a": states.FAILURE,
            "a_child": "UPSTREAM_FAILED",
            "b": states.FAILURE,
        }
        a_marker.touch()
        assert run.retry_failed(["a"]) == ["a", "a_child"]
        assert wait_for(lambda: run.nodes()["a_child"] == states.SUCCESS, 30), worker.output
    assert run.nodes() == {
        "root": states.SUCCESS,
        "a": states.SUCCESS,
        "a_child": states.SUCCESS,
        "b": states.FAILURE,
    }
    assert _attempts(run) == {"root": 1, "a": 2, "a_child": 2, "b": 1}
    values = run.get(timeout=5, propagate=False)
    assert values["a_child"]["start"] >= values["a"]["end"]
    assert [found.id for found in recent_runs(client)] == [run.id]
