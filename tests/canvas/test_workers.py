"""Workflows end to end with real ``celeriac -A flows worker`` subprocesses on SQLite.

The client sends by name (``client.signature("flows.add", ...)``), as a program that does not
import the worker's code would.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from celeriac import (
    Celeriac,
    Signature,
    chain,
    chord,
    chunks,
    dag,
    group,
    states,
    xmap,
    xstarmap,
)
from support.processes import WorkerProcess, run_cli
from support.waiting import wait_for

LEASE = "2"
Sig = Callable[..., Signature]


@pytest.fixture
def s(client: Celeriac) -> Sig:
    """``s("add", 1, 2)``: a signature of ``flows.add`` sent by the client."""

    def make(task: str, /, *args: Any, **kwargs: Any) -> Signature:
        return client.signature(f"flows.{task}", args, kwargs)

    return make


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_the_examples_with_a_worker(
    client: Celeriac, sqlite_url: str, s: Sig, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    with (
        WorkerProcess(sqlite_url, "-c", "2", app="flows"),
        WorkerProcess(sqlite_url, "-c", "1", "-Q", "other", "-n", "other@%h", app="flows"),
    ):
        assert chain(s("add", 4, 4) | s("mul", 8))().get(timeout=20) == 64
        assert (s("add", 4, 4) | s("add", 5, 6).set(immutable=True))().get(timeout=20) == 11
        total = chord(group(s("add", i, i) for i in range(100)), s("tsum"))().get(timeout=20)
        assert total == 9900
        assert group(s("add", i, i) for i in range(10))().get(timeout=20) == [
            2 * i for i in range(10)
        ]
        mapped = Signature("flows.xsum", app=client)
        assert xmap(mapped, [range(10), range(100)]).delay().get(timeout=20) == [45, 4950]
        pairs = list(zip(range(10), range(10), strict=True))
        assert xstarmap(s("add"), pairs).delay().get(timeout=20) == [2 * i for i in range(10)]
        assert chunks(s("add"), pairs, 4)().get(timeout=20) == [
            [0, 2, 4, 6],
            [8, 10, 12, 14],
            [16, 18],
        ]
        ok = s("add").apply_async(
            (2, 2), link=s("log_value", str(log)), link_error=s("on_error", str(log))
        )
        failed = s("fails").apply_async(
            (1,), link_error=[s("on_error", str(log)), s("on_error_full", str(log))]
        )
        assert ok.get(timeout=20) == 4
        assert s("add", 2).delay(4).get(timeout=20) == 6
        assert ~s("add", 2, 3) == 5
        assert s("add", 2, 2).set(countdown=1).delay().get(timeout=20) == 4
        assert chord([s("add", i, i) for i in range(5)])(s("tsum")).get(timeout=20) == 20
        routed = chain(s("add", 1, 1), s("mul", 10).set(queue="other"), s("add", 5))()
        assert routed.get(timeout=20) == 25
        assert routed.parent.worker.startswith("other@")
        assert routed.worker is not None and not routed.worker.startswith("other@")
        assert wait_for(lambda: len(_lines(log)) == 3, 20), _lines(log)
    assert failed.state == states.FAILURE
    assert sorted(_lines(log)) == sorted(
        ["value 4", f"errback {failed.id}", f"full {failed.id} KeyError True"]
    )


def _body_runs(path: Path) -> dict[str, list[int]]:
    runs: dict[str, list[int]] = {}
    for line in _lines(path):
        task_id, attempt, _ = line.split()
        runs.setdefault(task_id, []).append(int(attempt))
    return runs


@pytest.mark.parametrize("kill", [False, True], ids=["steady", "sigkill"])
def test_fifty_chords_of_a_hundred_each_body_once(
    client: Celeriac, sqlite_url: str, s: Sig, tmp_path: Path, kill: bool
) -> None:
    runs = tmp_path / "runs"
    # Bodies jump the queue (priority 9), so they run while later headers are still queued.
    body = s("counted_sum", str(runs)).set(priority=9)
    results = [chord([s("add", i, j) for j in range(100)], body)() for i in range(50)]
    worker = WorkerProcess(sqlite_url, "-c", "2", app="flows", CELERIAC_TEST_LEASE=LEASE).start()
    try:
        if kill:
            assert wait_for(lambda: len(_lines(runs)) >= 10, 60), worker.output
            for pid in [*worker.children(), worker.pid]:
                os.kill(pid, signal.SIGKILL)
            worker.wait(10)
            assert len(_lines(runs)) < 50  # killed in the middle
            worker = WorkerProcess(
                sqlite_url, "-c", "2", app="flows", CELERIAC_TEST_LEASE=LEASE
            ).start()
        values = [r.get(timeout=60) for r in results]
    except BaseException as exc:
        worker.add_log_to(exc)
        raise
    finally:
        worker.stop()
    assert values == [sum(i + j for j in range(100)) for i in range(50)]
    body_runs = _body_runs(runs)
    assert sorted(body_runs) == sorted(r.id for r in results)
    # Each body was enqueued once: no delivery attempt of one body twice. A body the killed
    # worker held may run again as its own next delivery, or only as that one, when the kill
    # came before its first delivery ran.
    twice = {i: a for i, a in body_runs.items() if len(set(a)) != len(a)}
    assert not twice, twice
    if not kill:
        assert all(attempts == [1] for attempts in body_runs.values()), body_runs


def _check_order(flow_nodes: dict[str, list[str]], values: dict[str, Any]) -> None:
    for name, parents in flow_nodes.items():
        for parent in parents:
            assert values[name]["start"] >= values[parent]["end"], (name, parent)


def test_dags_complete_in_dependency_order(client: Celeriac, sqlite_url: str, s: Sig) -> None:
    diamond = dag("diamond", app=client)
    top = diamond.add(s("stamp", name="top", seconds=0.05), name="top")
    left = diamond.add(s("stamp", name="left", seconds=0.2), after=[top], name="left")
    right = diamond.add(s("stamp", name="right", seconds=0.05), after=[top], name="right")
    diamond.add(s("stamp", name="bottom"), after=[left, right], name="bottom")
    shape = {"top": [], "left": ["top"], "right": ["top"], "bottom": ["left", "right"]}

    rng = random.Random(4)
    big = dag("random", app=client)
    big_shape: dict[str, list[str]] = {}
    for index in range(200):
        name = f"n{index}"
        parents = rng.sample(sorted(big_shape), k=min(len(big_shape), rng.randint(0, 3)))
        big.add(s("stamp", name=name), after=parents, name=name)
        big_shape[name] = parents

    with WorkerProcess(sqlite_url, "-c", "2", app="flows"):
        first, second = diamond.apply_async(), big.apply_async()
        values = first.get(timeout=30)
        big_values = second.get(timeout=60)
    _check_order(shape, values)
    _check_order(big_shape, big_values)
    assert sorted(big_values) == sorted(big_shape)
    assert second.state() == states.SUCCESS


def test_a_failed_branch_then_list_retry_and_status_from_the_cli(
    client: Celeriac, sqlite_url: str, s: Sig, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    report = dag("report", app=client)
    root = report.add(s("stamp", name="root"), name="root")
    good = report.add(s("stamp", name="good"), after=[root], name="good")
    bad = report.add(s("needs_marker", path=str(marker), name="bad"), after=[root], name="bad")
    report.add(s("stamp", name="joined"), after=[good, bad], name="joined")
    with WorkerProcess(sqlite_url, "-c", "2", app="flows"):
        run = report.apply_async()
        assert wait_for(lambda: run.state() != "RUNNING", 30)
        assert run.nodes() == {
            "root": states.SUCCESS,
            "good": states.SUCCESS,
            "bad": states.FAILURE,
            "joined": "UPSTREAM_FAILED",
        }
        shown = run_cli(sqlite_url, "-A", "flows", "dag", "status", run.id)
        assert shown.returncode == 1, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[0] == f"run {run.id} (report): FAILURE"
        table = {line.split()[0]: line.split()[1] for line in lines[2:]}
        assert table == {
            "root": "SUCCESS",
            "good": "SUCCESS",
            "bad": "FAILURE",
            "joined": "UPSTREAM_FAILED",
        }
        listed = run_cli(sqlite_url, "-A", "flows", "dag", "list")
        assert listed.returncode == 0, listed.stderr
        (row,) = [line for line in listed.stdout.splitlines() if run.id in line]
        assert "report" in row and "FAILURE" in row and "SUCCESS=2" in row
        first_root = run.get(timeout=5, propagate=False)["root"]
        refused = run_cli(sqlite_url, "-A", "flows", "dag", "retry", run.id, "--node", "good")
        assert refused.returncode == 1 and "good" in refused.stderr, refused.stderr
        marker.touch()
        retried = run_cli(sqlite_url, "-A", "flows", "dag", "retry", run.id, "--node", "bad")
        assert retried.returncode == 0, retried.stderr
        assert retried.stdout.strip() == f"run {run.id}: retrying bad, joined"
        values = run.get(timeout=30)
    assert values["root"] == first_root  # what succeeded did not run again
    assert values["joined"]["start"] >= values["bad"]["end"]
    shown = run_cli(sqlite_url, "-A", "flows", "dag", "status", run.id)
    assert shown.returncode == 0
    assert f"run {run.id} (report): SUCCESS" in shown.stdout
    missing = run_cli(sqlite_url, "-A", "flows", "dag", "status", "no-such-run")
    assert missing.returncode == 1 and "no DAG run no-such-run" in missing.stderr
