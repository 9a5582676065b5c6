"""Every dashboard action through its JSON API, on SQLite and Redis, with real workers
(``celeriac -A board worker`` subprocesses) where an action needs one."""

from __future__ import annotations

from celeriac import Celeriac, states
from celeriac.canvas.dag import dag
from dashboard.helpers import Dashboard, board_worker
from support.waiting import wait_for


def _dag_state(dashboard: Dashboard, run_id: str) -> str:
    return str(dashboard.get(f"/api/dags/{run_id}").json()["state"])


def test_queues_and_dead_letters_requeue_and_delete(
    board: Celeriac, dashboard: Dashboard, sqlite_or_redis_url: str
) -> None:
    refused = [board.send_task("board.refused", (n,)).id for n in range(3)]
    with board_worker(sqlite_or_redis_url):
        assert wait_for(lambda: len(dashboard.get("/api/deadletters").json()) == 3, 30)
    letters = dashboard.get("/api/deadletters").json()
    assert {d["task_id"] for d in letters} == set(refused)
    assert {d["task"] for d in letters} == {"board.refused"}
    assert all("refused" in d["reason"] for d in letters)
    assert dashboard.get("/api/queues").json() == [{"name": "celeriac", "length": 0}]

    first, second, third = (d["tag"] for d in letters)
    assert dashboard.post("/api/deadletters/requeue", {"tags": [first]}).json() == {"requeued": 1}
    assert dashboard.get("/api/queues").json() == [{"name": "celeriac", "length": 1}]
    moved = dashboard.post("/api/deadletters/requeue", {"tags": [second], "queue": "elsewhere"})
    assert moved.json() == {"requeued": 1}
    assert board.broker.queue_lengths(["elsewhere"]) == {"elsewhere": 1}
    assert dashboard.post("/api/deadletters/delete", {"tags": [third]}).json() == {"deleted": 1}
    assert dashboard.get("/api/deadletters").json() == []
    # An empty body must not mean "all".
    assert dashboard.post("/api/deadletters/delete", {}).status_code == 400


def test_schedules_pause_resume_and_run_now(board: Celeriac, dashboard: Dashboard) -> None:
    (entry,) = dashboard.get("/api/schedules").json()
    assert entry["name"] == "tick-every-hour"
    assert entry["paused"] is False and entry["next_run"]
    assert dashboard.post("/api/schedules/tick-every-hour/pause").json()["paused"] is True
    assert dashboard.get("/api/schedules").json()[0]["paused"] is True
    assert dashboard.post("/api/schedules/tick-every-hour/resume").json()["paused"] is False
    ran = dashboard.post("/api/schedules/tick-every-hour/run").json()
    assert ran["task_id"]
    assert board.broker.queue_lengths(["celeriac"]) == {"celeriac": 1}
    assert dashboard.post("/api/schedules/no-such/pause").status_code == 404
    assert "tick-every-hour" in dashboard.get("/schedules").text


def test_a_dag_run_with_a_failed_node_is_drawn_and_retried(
    board: Celeriac, dashboard: Dashboard, sqlite_or_redis_url: str
) -> None:
    flow = dag("report", app=board)
    left = flow.add(board.signature("board.add", (1, 2)), name="left")
    right = flow.add(board.signature("board.fails", ("k",)), name="right")
    flow.add(board.signature("board.add", (0, 0), immutable=True), after=[left, right], name="join")
    run = flow.apply_async()
    with board_worker(sqlite_or_redis_url):
        assert wait_for(lambda: _dag_state(dashboard, run.id) != "RUNNING", 30)
        shown = dashboard.get(f"/api/dags/{run.id}").json()
        nodes = {n["name"]: n for n in shown["nodes"]}
        assert shown["state"] == states.FAILURE
        assert nodes["left"]["state"] == states.SUCCESS
        assert nodes["right"]["state"] == states.FAILURE
        assert nodes["join"]["state"] == "UPSTREAM_FAILED"
        assert nodes["join"]["parents"] == ["left", "right"] and nodes["join"]["depth"] == 1
        page = dashboard.get(f"/dags/{run.id}").text
        assert 'data-node="right" data-state="FAILURE"' in page
        retried = dashboard.post(f"/api/dags/{run.id}/retry").json()
        assert retried["retried"] == ["right", "join"]
        assert wait_for(lambda: _dag_state(dashboard, run.id) != "RUNNING", 30)
        again = {n["name"]: n for n in dashboard.get(f"/api/dags/{run.id}").json()["nodes"]}
        assert again["right"]["attempt"] == 2 and again["left"]["attempt"] == 1
    assert dashboard.get("/api/dags/no-such-run").status_code == 404


def test_openapi_names_every_endpoint(dashboard: Dashboard) -> None:
    document = dashboard.get("/api/openapi.json").json()
    paths = document["paths"]
    for path, method in [
        ("/api/tasks", "get"),
        ("/api/tasks/{task_id}", "get"),
        ("/api/tasks/{task_id}/revoke", "post"),
        ("/api/tasks/{task_id}/terminate", "post"),
        ("/api/tasks/{task_id}/retry", "post"),
        ("/api/tasks/retry-failed", "post"),
        ("/api/workers", "get"),
        ("/api/workers/{hostname}/grow", "post"),
        ("/api/queues", "get"),
        ("/api/deadletters", "get"),
        ("/api/deadletters/requeue", "post"),
        ("/api/schedules", "get"),
        ("/api/schedules/{name}/run", "post"),
        ("/api/dags/{run_id}", "get"),
        ("/api/dags/{run_id}/retry", "post"),
        ("/metrics", "get"),
    ]:
        assert method in paths[path], path
    assert document["openapi"].startswith("3.")
