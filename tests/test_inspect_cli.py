"""``celeriac inspect``, ``celeriac control`` and ``celeriac status`` as a user runs them,
against real worker subprocesses, on SQLite and Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from celeriac import Celeriac, states
from support.processes import WorkerProcess, run_cli
from support.waiting import wait_for

W1, W2 = "w1@test", "w2@test"


@pytest.fixture
def app(sqlite_or_redis_url: str) -> Iterator[Celeriac]:
    client = Celeriac("client", broker=sqlite_or_redis_url)
    yield client
    client.close()


def cli(url: str, *args: str) -> tuple[int, str]:
    """Run ``celeriac -A jobs <args>``: the exit status, and stdout then stderr."""
    done = run_cli(url, "-A", "jobs", *args)
    return done.returncode, done.stdout + done.stderr


def test_status_and_inspect_print_what_the_workers_answer(
    app: Celeriac, sqlite_or_redis_url: str
) -> None:
    url = sqlite_or_redis_url
    with (
        WorkerProcess(url, "-c", "1", "-n", W1),
        WorkerProcess(url, "-c", "1", "-n", W2),
    ):
        assert cli(url, "status", "-t", "2") == (
            0,
            f"->  {W1}: OK\n->  {W2}: OK\n\n2 nodes online.\n",
        )
        running = app.send_task("jobs.sleep_for", (60,))

        def active() -> str:
            return cli(url, "inspect", "active", "-t", "2")[1]

        assert wait_for(lambda: running.id in active(), 20)
        code, shown = cli(url, "inspect", "active", "-t", "2")
        assert code == 0 and f"* jobs.sleep_for[{running.id}] args=[60] kwargs={{}}" in shown
        code, shown = cli(url, "inspect", "ping", "-d", W2, "--json")
        assert (code, json.loads(shown)) == (0, {W2: {"ok": "pong"}})
        code, shown = cli(url, "inspect", "registered", "-d", W1)
        assert code == 0 and shown.startswith(f"->  {W1}: OK\n    * jobs.add\n")
        code, shown = cli(url, "inspect", "stats", "-d", W1, "-j")
        assert code == 0 and json.loads(shown)[W1]["pool"]["max-concurrency"] == 1
        code, shown = cli(url, "inspect", "active_queues", "-d", W1)
        assert "* celeriac (exchange celeriac, routing key celeriac)" in shown

        code, shown = cli(url, "control", "terminate", running.id, "-t", "2")
        assert code == 0 and shown.count(f"tasks {running.id} flagged as revoked") == 2
        assert running.state == states.REVOKED
        assert wait_for(lambda: running.id not in active(), 20)
        code, shown = cli(url, "inspect", "revoked", "-d", W1)
        assert f"* {running.id}" in shown

        code, shown = cli(url, "control", "rate_limit", "jobs.add", "10/s", "-d", W1)
        assert (code, shown) == (
            0,
            f"->  {W1}: OK\n        new rate limit set successfully\n\n1 node online.\n",
        )
        code, shown = cli(url, "control", "time_limit", "jobs.nope", "5", "10", "-d", W1)
        assert f"->  {W1}: ERROR\n        unknown task" in shown
        for command in (("pool_grow", "1"), ("pool_shrink", "1")):
            code, shown = cli(url, "control", *command, "-d", W1)
            assert code == 0 and f"pool will {command[0][5:]}" in shown
        code, shown = cli(url, "control", "add_consumer", "extra", "-d", W1)
        assert "add consumer extra" in shown
        assert app.send_task("jobs.add", (2, 2), queue="extra").get(timeout=20) == 4
        code, shown = cli(url, "control", "cancel_consumer", "extra", "-d", W1)
        assert "no longer consuming from extra" in shown
        code, shown = cli(url, "control", "shutdown", "-d", W2)
        assert (code, shown) == (0, f"->  {W2}: OK\n        shutting down\n\n1 node online.\n")
        code, shown = cli(url, "control", "revoke", "some-id", "-d", W1)
        assert "tasks some-id flagged as revoked" in shown


def test_no_worker_answering_is_an_error_line_and_status_1(sqlite_or_redis_url: str) -> None:
    url = sqlite_or_redis_url
    for command in (("status",), ("inspect", "ping"), ("control", "shutdown")):
        code, shown = cli(url, *command, "-t", "0.3")
        assert (code, shown) == (1, "Error: No nodes replied within time constraint.\n")
    code, shown = cli(url, "inspect", "nonsense")
    assert code == 2 and "Invalid value" in shown


def test_broker_passwords_never_reach_the_output(tmp_path: object) -> None:
    url = "redis://:s3cret@127.0.0.1:1/0"  # nothing listens: the command fails, masked
    code, shown = cli(url, "status", "-t", "0.3")
    assert code == 1 and "s3cret" not in shown
