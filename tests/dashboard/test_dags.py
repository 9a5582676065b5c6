"""DAG runs in the dashboard: the list of recent runs (``/dags``, ``GET /api/dags``) and
retrying one failed node (``POST /api/dags/{run_id}/nodes/{node}/retry``), on SQLite and Redis,
with a real ``celeriac -A board worker`` where a node must run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celeriac import Celeriac, states
from celeriac.canvas.dag import DagRun, dag
from dashboard.helpers import Dashboard, board_worker
from support.waiting import wait_for

# A name with a slash and a space: the node's part of the URL is the rest of the path.
LEFT = "extract/users list"
LEFT_URL = "extract/users%20list"


def _nodes(dashboard: Dashboard, run_id: str) -> dict[str, dict[str, Any]]:
    shown = dashboard.get(f"/api/dags/{run_id}").json()
    return {node["name"]: node for node in shown["nodes"]}


def _two_failed_branches(board: Celeriac, marker: Path) -> DagRun:
    flow = dag("report", app=board)
    left = flow.add(board.signature("board.needs_marker", (), {"path": str(marker)}), name=LEFT)
    flow.add(board.signature("board.add", (1, 1), immutable=True), after=[left], name="load")
    flow.add(board.signature("board.fails", ("k",)), name="right")
    return flow.apply_async()


def test_one_failed_node_is_retried_from_the_api(
    board: Celeriac, dashboard: Dashboard, sqlite_or_redis_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    run = _two_failed_branches(board, marker)
    base = f"/api/dags/{run.id}/nodes"
    with board_worker(sqlite_or_redis_url) as worker:
        assert wait_for(lambda: run.state() != "RUNNING", 30), worker.output
        nodes = _nodes(dashboard, run.id)
        assert {name: node["state"] for name, node in nodes.items()} == {
            LEFT: states.FAILURE,
            "load": "UPSTREAM_FAILED",
            "right": states.FAILURE,
        }
        assert [n for n, node in nodes.items() if node["retryable"]] == [LEFT, "right"]
        page = dashboard.get(f"/dags/{run.id}").text
        assert f'data-post="{base}/{LEFT_URL}/retry"' in page
        assert f'data-post="{base}/right/retry"' in page
        assert f'data-post="{base}/load/retry"' not in page  # it did not run: no button

        skipped = dashboard.post(f"{base}/load/retry")
        assert skipped.status_code == 409
        assert "'load' (UPSTREAM_FAILED)" in skipped.json()["error"]
        unknown = dashboard.post(f"{base}/nope/retry")
        assert unknown.status_code == 404 and "'nope'" in unknown.json()["error"]
        assert dashboard.post("/api/dags/no-such-run/nodes/right/retry").status_code == 404

        marker.touch()
        retried = dashboard.post(f"{base}/{LEFT_URL}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json() == {"id": run.id, "node": LEFT, "retried": [LEFT, "load"]}
        assert wait_for(lambda: _nodes(dashboard, run.id)["load"]["state"] == "SUCCESS", 30)
    nodes = _nodes(dashboard, run.id)
    assert {name: (node["state"], node["attempt"]) for name, node in nodes.items()} == {
        LEFT: (states.SUCCESS, 2),
        "load": (states.SUCCESS, 2),
        "right": (states.FAILURE, 1),  # the other failed node was left alone
    }
    again = dashboard.post(f"{base}/{LEFT_URL}/retry")
    assert again.status_code == 409 and "SUCCESS" in again.json()["error"]


def test_a_cross_site_node_retry_is_refused(board: Celeriac, dashboard: Dashboard) -> None:
    flow = dag("report", app=board)
    flow.add(board.signature("board.fails", ("k",)), name="right")
    run = flow.apply_async()
    token = dashboard.get("/api/csrf").json()["token"]
    url = f"/api/dags/{run.id}/nodes/right/retry"
    for headers in (
        {"X-CSRF-Token": token, "Origin": "http://evil.example"},
        {"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site", "Origin": "http://127.0.0.1:5555"},
        {"Origin": "http://127.0.0.1:5555"},  # no token
    ):
        refused = dashboard.client.post(url, json={}, headers=headers)
        assert refused.status_code == 403, headers
    # Refused by the gate, before the action (which would answer 409: the node has not run).
    assert run.status()[0].attempt == 1


def test_recent_runs_are_listed_newest_first(board: Celeriac, dashboard: Dashboard) -> None:
    empty = dashboard.get("/dags")
    assert empty.status_code == 200 and "No DAG run yet" in empty.text
    assert dashboard.get("/api/dags").json() == []
    ids = []
    for name in ("first", "second", "third"):
        flow = dag(name, app=board)
        top = flow.add(board.signature("board.add", (1, 1)), name="top")
        flow.add(board.signature("board.add", (2,)), after=[top], name="below")
        ids.append(flow.apply_async().id)

    listed = dashboard.get("/api/dags").json()
    assert [run["id"] for run in listed] == ids[::-1]
    assert [run["name"] for run in listed] == ["third", "second", "first"]
    newest = listed[0]
    assert newest["state"] == "RUNNING" and newest["nodes"] == 2
    assert newest["counts"] == {states.PENDING: 1, "WAITING": 1}
    assert newest["created"] >= listed[-1]["created"]
    assert [run["id"] for run in dashboard.get("/api/dags?limit=1").json()] == [ids[-1]]
    for bad in ("0", "-1", "many"):
        assert dashboard.get(f"/api/dags?limit={bad}").status_code == 400

    page = dashboard.get("/dags").text
    rows = [page.index(f'data-run="{run_id}"') for run_id in ids]
    assert rows == sorted(rows, reverse=True)  # newest first
    assert f'href="/dags/{ids[0]}"' in page and "WAITING 1" in page


def test_openapi_describes_the_new_routes(dashboard: Dashboard) -> None:
    paths = dashboard.get("/api/openapi.json").json()["paths"]
    assert paths["/api/dags"]["get"]["parameters"][0]["name"] == "limit"
    retry = paths["/api/dags/{run_id}/nodes/{node}/retry"]["post"]
    names = [p["name"] for p in retry["parameters"]]
    assert names == ["run_id", "node", "X-CSRF-Token"]
    assert "409" in retry["responses"]
