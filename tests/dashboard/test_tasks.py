"""Tasks and workers through the dashboard's API, against real workers on SQLite and Redis:
search, the task page, revoke, terminate, retry (one and all failed), pool grow and shrink,
shutdown, and the Prometheus metrics."""

from __future__ import annotations

from typing import Any

from celeriac import Celeriac, states
from dashboard.helpers import Dashboard, board_worker
from support.waiting import wait_for


def _task(dashboard: Dashboard, task_id: str) -> dict[str, Any]:
    found = dashboard.get(f"/api/tasks/{task_id}")
    return found.json() if found.status_code == 200 else {}


def _reaches(dashboard: Dashboard, task_id: str, state: str, timeout: float = 30) -> bool:
    """Whether the task's history reaches ``state`` in time (its result alone, which the task
    page falls back on and which is written first, does not count: it has no timeline)."""

    def recorded() -> bool:
        found = _task(dashboard, task_id)
        return found.get("state") == state and bool(found.get("events"))

    return wait_for(recorded, timeout)


def test_search_the_task_page_retry_and_retry_all_failed(
    board: Celeriac, dashboard: Dashboard, sqlite_or_redis_url: str
) -> None:
    small = board.send_task("board.add", (2, 2)).id
    large = board.send_task("board.add", (3, 40417)).id
    failed = [board.send_task("board.fails", (key,)).id for key in ("a", "b")]
    with board_worker(sqlite_or_redis_url) as worker:
        for task_id in failed:
            assert _reaches(dashboard, task_id, states.FAILURE), worker.output
        assert _reaches(dashboard, large, states.SUCCESS)

        by_text = dashboard.get("/api/tasks", params={"text": "40417"}).json()
        assert [t["id"] for t in by_text["tasks"]] == [large]
        by_state = dashboard.get("/api/tasks", params={"state": "failure"}).json()
        assert {t["id"] for t in by_state["tasks"]} == set(failed) and by_state["total"] == 2
        by_name = dashboard.get("/api/tasks", params={"name": "board.add"}).json()
        assert {t["id"] for t in by_name["tasks"]} == {small, large}
        paged = dashboard.get("/api/tasks", params={"size": 1, "page": 2}).json()
        assert paged["total"] == 4 and paged["pages"] == 4 and len(paged["tasks"]) == 1
        assert dashboard.get("/api/tasks", params={"since": "2000-01-01"}).json()["total"] == 4
        future = {"since": "2999-01-01T00:00+00:00"}
        assert dashboard.get("/api/tasks", params=future).json()["total"] == 0
        hostname = _task(dashboard, large)["worker"]
        assert dashboard.get("/api/tasks", params={"worker": hostname}).json()["total"] == 4

        shown = _task(dashboard, failed[0])
        assert shown["name"] == "board.fails" and shown["args"] == '["a"]'
        assert "KeyError" in shown["exception"] and "raise KeyError" in shown["traceback"]
        assert [e["type"] for e in shown["events"]][-1] == "task-failed"
        assert "no such key" in dashboard.get(f"/tasks/{failed[0]}").text

        new_id = dashboard.post(f"/api/tasks/{failed[0]}/retry").json()["new_id"]
        assert new_id != failed[0]
        assert _reaches(dashboard, new_id, states.FAILURE)
        again = _task(dashboard, new_id)
        assert again["parent_id"] == failed[0] and again["args"] == '["a"]'

        everything = dashboard.post("/api/tasks/retry-failed", {"name": "board.fails"}).json()
        assert everything["refused"] == []
        assert {r["id"] for r in everything["retried"]} == {*failed, new_id}
        for retried in everything["retried"]:
            assert _reaches(dashboard, retried["new_id"], states.FAILURE)
    assert dashboard.get("/api/tasks/no-such-task").status_code == 404
    assert dashboard.post("/api/tasks/no-such-task/retry").status_code == 404
    unknown = dashboard.get("/tasks/no-such-task")  # the page waits for it, as Celery would
    assert unknown.status_code == 200 and 'id="task-state">PENDING' in unknown.text


def test_the_progress_of_a_running_task(
    board: Celeriac, dashboard: Dashboard, sqlite_or_redis_url: str
) -> None:
    task_id = board.send_task("board.halfway", (1.0,)).id
    with board_worker(sqlite_or_redis_url) as worker:
        assert wait_for(lambda: _task(dashboard, task_id).get("progress"), 30), worker.output
        assert _task(dashboard, task_id)["progress"] == {"done": 5, "of": 10}
        assert "Progress:" in dashboard.get(f"/tasks/{task_id}").text
        assert board.AsyncResult(task_id).get(timeout=30) == "done"


def test_revoke_a_waiting_task_and_terminate_a_running_one(
    board: Celeriac, dashboard: Dashboard, sqlite_or_redis_url: str
) -> None:
    waiting = board.send_task("board.add", (1, 1), countdown=2).id
    assert dashboard.post(f"/api/tasks/{waiting}/revoke").json()["revoked"] is True
    running = board.send_task("board.sleep_for", (60,)).id
    with board_worker(sqlite_or_redis_url) as worker:
        assert _reaches(dashboard, running, states.STARTED), worker.output
        assert dashboard.post(f"/api/tasks/{running}/terminate").json()["terminate"] is True
        assert _reaches(dashboard, running, states.REVOKED), worker.output
        assert board.AsyncResult(running).state == states.REVOKED
        # The worker lives on and runs the next task; the revoked one never ran.
        assert board.send_task("board.add", (5, 5)).get(timeout=30) == 10
        assert board.AsyncResult(waiting).state == states.REVOKED


def _stats(dashboard: Dashboard) -> dict[str, Any]:
    found = dashboard.get("/api/workers").json()
    return found[0] if found and found[0].get("stats") else {}


def test_workers_pool_grow_shrink_and_shutdown(
    dashboard: Dashboard, sqlite_or_redis_url: str
) -> None:
    def concurrency() -> int:
        stats = _stats(dashboard).get("stats") or {}
        return int(stats.get("pool", {}).get("max-concurrency", 0))

    with board_worker(sqlite_or_redis_url) as worker:
        assert wait_for(lambda: concurrency() == 2, 30), worker.output
        hostname = _stats(dashboard)["hostname"]
        assert hostname in dashboard.get("/workers").text
        dashboard.post(f"/api/workers/{hostname}/grow", {"n": 1})
        assert wait_for(lambda: concurrency() == 3, 30), worker.output
        dashboard.post(f"/api/workers/{hostname}/shrink", {"n": 2})
        assert wait_for(lambda: concurrency() == 1, 30), worker.output
        assert dashboard.post(f"/api/workers/{hostname}/grow", {"n": 0}).status_code == 400
        dashboard.post(f"/api/workers/{hostname}/shutdown")
        assert worker.wait(30) == 0


def test_metrics_count_tasks_by_state_and_their_run_times(
    board: Celeriac, dashboard: Dashboard, sqlite_or_redis_url: str
) -> None:
    dashboard.get("/metrics")  # the run-time histogram counts from the first scrape
    sent = [board.send_task("board.add", (n, n)) for n in range(3)]
    board.send_task("board.refused", (0,))
    with board_worker(sqlite_or_redis_url):
        assert [r.get(timeout=30) for r in sent] == [0, 2, 4]
        assert wait_for(lambda: "celeriac_workers_online 1" in dashboard.get("/metrics").text, 30)
        assert wait_for(lambda: len(board.broker.dead_letters()) == 1, 30)
        # The history is written beside the results, not with them: wait for it too.
        counted = 'celeriac_tasks{state="SUCCESS",name="board.add"} 3'
        assert wait_for(lambda: counted in dashboard.get("/metrics").text, 30)
    text = dashboard.get("/metrics").text
    assert 'celeriac_task_runtime_seconds_count{name="board.add"} 3' in text
    assert 'celeriac_task_runtime_seconds_bucket{name="board.add",le="+Inf"} 3' in text
    assert 'celeriac_queue_length{queue="celeriac"} 0' in text
    assert "celeriac_dead_letters 1" in text
    assert dashboard.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")


def test_hidden_arguments_are_not_shown(
    board: Celeriac, dashboard: Dashboard, sqlite_or_redis_url: str
) -> None:
    board.conf.dashboard_hide_args = True
    task_id = board.send_task("board.add", (12345, 67890)).id
    with board_worker(sqlite_or_redis_url):
        assert _reaches(dashboard, task_id, states.SUCCESS)
    shown = _task(dashboard, task_id)
    assert shown["args"] == "" and shown["kwargs"] == ""
    assert "12345" not in dashboard.get("/tasks").text
    assert "12345" not in dashboard.get(f"/tasks/{task_id}").text


def test_the_live_feed_hides_arguments_too(
    board: Celeriac, dashboard: Dashboard, sqlite_or_redis_url: str
) -> None:
    board.conf.dashboard_hide_args = True
    seen = []
    with dashboard.client.stream("GET", "/api/events?limit=30") as feed:
        task_id = board.send_task("board.add", (12345, 67890)).id
        with board_worker(sqlite_or_redis_url):
            for line in feed.iter_lines():  # pings every 2 s: it ends, at the latest after 30
                seen.append(line)
                if task_id in line and "task-succeeded" in line:
                    break
    text = "\n".join(seen)
    assert task_id in text and "task-received" in text, text
    assert "12345" not in text
