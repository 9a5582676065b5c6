"""The dashboard's gate: credentials off loopback, CSRF and same-origin on every write, masked
URLs. Through Starlette's test client, on the app's real (SQLite) broker."""

from __future__ import annotations

import base64
import json
import time

import pytest

from celeriac import Celeriac
from celeriac.dashboard import DashboardOptions
from celeriac.dashboard.options import is_loopback
from celeriac.exceptions import ConfigurationError
from celeriac.history import TaskEvent
from dashboard.helpers import Dashboard

ORIGIN = "http://127.0.0.1:5555"


@pytest.fixture
def app(sqlite_url: str) -> Celeriac:
    return Celeriac("gate", broker=sqlite_url)


def _basic(user_password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(user_password.encode()).decode()}


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.5", "example.com", "::"])
def test_a_public_address_needs_credentials(address: str) -> None:
    with pytest.raises(ConfigurationError, match="refusing to serve the dashboard on"):
        DashboardOptions(address=address).check()
    DashboardOptions(address=address, token="s3cret").check()
    DashboardOptions(address=address, basic_auth="ann:pw").check()


def test_loopback_addresses_need_none() -> None:
    for address in ("127.0.0.1", "127.1.2.3", "::1", "localhost"):
        assert is_loopback(address)
        DashboardOptions(address=address).check()


def test_basic_auth_needs_a_colon() -> None:
    with pytest.raises(ConfigurationError, match="user:password"):
        DashboardOptions(address="0.0.0.0", basic_auth="ann").check()


def test_basic_auth_is_required_on_every_request(app: Celeriac) -> None:
    board = Dashboard(app, DashboardOptions(address="0.0.0.0", basic_auth="ann:pw"))
    for path in (
        "/",
        "/tasks",
        "/api/queues",
        "/metrics",
        "/api/openapi.json",
        "/static/dashboard.js",
    ):
        refused = board.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert board.get(path, headers=_basic("ann:wrong")).status_code == 401
        assert board.get(path, headers=_basic("ann:pw")).status_code == 200, path
    assert board.client.post("/api/deadletters/delete", json={"tags": "all"}).status_code == 401


def test_a_token_as_bearer_or_once_in_the_query(app: Celeriac) -> None:
    board = Dashboard(app, DashboardOptions(address="0.0.0.0", token="s3cret"))
    assert board.get("/api/queues").status_code == 401
    assert board.get("/api/queues", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert board.get("/api/queues", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    # A browser opens /?token=...; the token is then kept in a cookie for the next requests.
    assert board.get("/?token=s3cret").status_code == 200
    assert board.get("/api/queues").status_code == 200


def test_a_write_needs_the_csrf_token(app: Celeriac) -> None:
    board = Dashboard(app)
    body = {"tags": "all"}
    assert board.client.post("/api/deadletters/delete", json=body).status_code == 403
    board.client.get("/api/csrf")  # the cookie, but no header
    wrong = {"X-CSRF-Token": "guess", "Origin": ORIGIN}
    assert board.client.post("/api/deadletters/delete", json=body, headers=wrong).status_code == 403
    assert board.post("/api/deadletters/delete", body).json() == {"deleted": 0}


def test_a_page_carries_the_token_of_its_cookie(app: Celeriac) -> None:
    board = Dashboard(app)
    page = board.get("/queues").text
    token = board.client.cookies["celeriac_csrf"]
    assert f'<meta name="csrf-token" content="{token}">' in page


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Referer": "http://evil.example/page"},
        {"Sec-Fetch-Site": "cross-site", "Origin": ORIGIN},
    ],
)
def test_a_cross_site_write_is_refused_even_with_the_token(
    app: Celeriac, headers: dict[str, str]
) -> None:
    board = Dashboard(app)
    token = board.get("/api/csrf").json()["token"]
    refused = board.client.post(
        "/api/deadletters/delete", json={"tags": "all"}, headers={"X-CSRF-Token": token, **headers}
    )
    assert refused.status_code == 403
    assert "refused" in refused.json()["error"]


def test_broker_passwords_are_masked_on_pages(tmp_path: object) -> None:
    app = Celeriac("masked", broker="redis://:hunter2@127.0.0.1:1/0")
    # Nothing listens there: the page is the error page, which names the store, masked too.
    page = Dashboard(app).get("/dags")
    assert page.status_code == 503
    assert "hunter2" not in page.text
    assert "broker: redis://:***@127.0.0.1:1/0</span>" in page.text
    assert 'class="error">Redis at redis://:***@127.0.0.1:1/0' in page.text


def test_without_credentials_only_a_loopback_host_is_served(app: Celeriac) -> None:
    # DNS rebinding: a site whose name resolves to 127.0.0.1 would be the dashboard's origin.
    board = Dashboard(app)
    assert board.get("/api/queues", headers={"Host": "evil.example:5555"}).status_code == 403
    for host in ("127.0.0.1:5555", "localhost:5555", "[::1]:5555"):
        assert board.get("/api/queues", headers={"Host": host}).status_code == 200, host
    guarded = Dashboard(app, DashboardOptions(address="0.0.0.0", token="s3cret"))
    token = {"Authorization": "Bearer s3cret", "Host": "board.example.com"}
    assert guarded.get("/api/queues", headers=token).status_code == 200


def test_what_tasks_carry_is_escaped_on_pages(app: Celeriac) -> None:
    attack = '<script>alert("x")</script>'
    fields = {"name": "board.add", "args": json.dumps([attack]), "kwargs": "{}"}
    app.backend.record_events(
        [TaskEvent("task-received", "t-1", time.time(), "w@h", fields)], retention=None
    )
    board = Dashboard(app)
    for path in ("/tasks", "/tasks/t-1"):
        page = board.get(path).text
        assert "<script>alert" not in page and "&lt;script&gt;alert" in page, path
