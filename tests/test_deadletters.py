"""``celeriac deadletters``: list, show, requeue and delete the messages workers gave up on, as a
user runs it, on SQLite and Redis; a requeued letter runs again in a real worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celeriac
from celeriac.result import AsyncResult
from support.processes import WorkerProcess, run_cli


@pytest.fixture
def app(sqlite_or_redis_url: str) -> Iterator[Celeriac]:
    client = Celeriac("client", broker=sqlite_or_redis_url)
    yield client
    client.close()


def cli(url: str, *args: str) -> tuple[int, str]:
    done = run_cli(url, "-A", "jobs", *args)
    return done.returncode, done.stdout + done.stderr


def bury(app: Celeriac, *calls: tuple[int, int]) -> list[AsyncResult[Any]]:
    """Send ``jobs.add`` calls and dead-letter each, as a worker that gave up would."""
    sent = [app.send_task("jobs.add", call) for call in calls]
    deliveries = app.broker.fetch(["celeriac"], len(calls), lease=30, consumer="t", timeout=0)
    for delivery in deliveries:
        assert app.broker.dead_letter(delivery, "WorkerLostError: gave up")
    return sent


def test_list_show_and_requeue_one_then_a_worker_runs_it(
    app: Celeriac, sqlite_or_redis_url: str
) -> None:
    url = sqlite_or_redis_url
    assert cli(url, "deadletters", "list") == (0, "No dead letters.\n")
    first, second = bury(app, (1, 2), (3, 4))
    newest, oldest = app.broker.dead_letters()

    code, shown = cli(url, "deadletters", "list")
    assert code == 0 and shown.endswith("\n2 dead letters.\n")
    assert shown.index(f"jobs.add[{second.id}]") < shown.index(f"jobs.add[{first.id}]")
    assert "WorkerLostError: gave up" in shown
    code, shown = cli(url, "deadletters", "list", "--json")
    assert [d["id"] for d in json.loads(shown)] == [second.id, first.id]

    code, shown = cli(url, "deadletters", "show", oldest.tag)
    assert code == 0 and f"id:        {first.id}" in shown and "args:      [1, 2]" in shown
    code, shown = cli(url, "deadletters", "show", "no-such-tag")
    assert (code, shown) == (1, "Error: no dead letter 'no-such-tag'\n")

    assert cli(url, "deadletters", "requeue", oldest.tag) == (0, "Requeued 1 dead letter.\n")
    assert [d.tag for d in app.broker.dead_letters()] == [newest.tag]
    with WorkerProcess(url, "-c", "1"):
        assert first.get(timeout=20) == 3
    code, shown = cli(url, "deadletters", "requeue", oldest.tag)
    assert code == 1 and "1 of the tags named no dead letter" in shown


def test_requeue_all_into_another_queue_and_delete(app: Celeriac, sqlite_or_redis_url: str) -> None:
    url = sqlite_or_redis_url
    bury(app, (1, 1), (2, 2))
    code, shown = cli(url, "deadletters", "requeue", "--all", "--queue", "later")
    assert (code, shown) == (0, "Requeued 2 dead letters.\n")
    assert app.broker.queue_lengths(["celeriac", "later"]) == {"celeriac": 0, "later": 2}

    bury(app, (5, 5), (6, 6), (7, 7))
    middle = app.broker.dead_letters()[1]
    assert cli(url, "deadletters", "delete", middle.tag) == (0, "Deleted 1 dead letter.\n")
    code, shown = cli(url, "deadletters", "delete", "--all")  # asks first; no answer: aborted
    assert code == 1 and len(app.broker.dead_letters()) == 2
    assert cli(url, "deadletters", "delete", "--all", "-f") == (0, "Deleted 2 dead letters.\n")
    code, shown = cli(url, "deadletters", "requeue")
    assert code == 2 and "name dead letters by their tags, or give --all" in shown
