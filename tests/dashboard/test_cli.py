"""``celeriac dashboard`` as a user runs it: refusing a public address without credentials,
serving on loopback, and the history still there after a restart."""

from __future__ import annotations

import httpx

from celeriac import Celeriac
from dashboard.helpers import DashboardProcess, board_worker
from support.processes import run_cli
from support.waiting import wait_for


def test_a_public_address_without_credentials_is_refused_in_one_line(sqlite_url: str) -> None:
    refused = run_cli(sqlite_url, "dashboard", "--broker", sqlite_url, "--address", "0.0.0.0")
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "refusing to serve the dashboard on 0.0.0.0 without credentials" in lines[0]
    assert "--basic-auth" in lines[0] and "--token" in lines[0]


def test_served_with_a_token_it_answers_only_with_it(sqlite_url: str) -> None:
    with DashboardProcess(sqlite_url, "--address", "127.0.0.1", "--token", "s3cret") as board:
        assert httpx.get(board.base + "/api/queues").status_code == 401
        token = {"Authorization": "Bearer s3cret"}
        assert httpx.get(board.base + "/api/queues", headers=token).status_code == 200


def test_the_ready_line_names_the_address_and_masks_the_broker(sqlite_url: str) -> None:
    with DashboardProcess(sqlite_url, app=None) as board:
        assert board.ready_line.startswith(f"celeriac dashboard on http://127.0.0.1:{board.port}/")
        assert httpx.get(board.base + "/").status_code == 200


def test_the_history_survives_a_dashboard_restart(sqlite_url: str) -> None:
    client = Celeriac("board", broker=sqlite_url)
    sent = [client.send_task("board.add", (n, n)).id for n in range(3)]
    with DashboardProcess(sqlite_url) as first, board_worker(sqlite_url):
        assert wait_for(lambda: _succeeded(first, "board.add") == set(sent), 30)
    # A new dashboard process shows them: the history is in the backend, not in the dashboard.
    with DashboardProcess(sqlite_url) as board:
        assert _succeeded(board, "board.add") == set(sent)
        assert board.ready_line  # a new process: it printed its address again
    client.close()


def _succeeded(board: DashboardProcess, name: str) -> set[str]:
    found = httpx.get(board.base + "/api/tasks", params={"name": name}).json()
    return {t["id"] for t in found["tasks"] if t["state"] == "SUCCESS"}
