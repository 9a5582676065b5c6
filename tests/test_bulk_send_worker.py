"""Messages built the cheap way (a big group's bulk build, a delay() stamped from its template,
a call without arguments) are the ones a real worker runs: end to end, on SQLite and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac import Celeriac, group
from celeriac.ids import PAUSE_COLLECTOR
from support.processes import WorkerProcess


@pytest.fixture
def client(sqlite_or_redis_url: str) -> Iterator[Celeriac]:
    app = Celeriac("client", broker=sqlite_or_redis_url)
    yield app
    app.close()


def test_a_worker_runs_a_big_group_and_plain_calls(
    client: Celeriac, sqlite_or_redis_url: str
) -> None:
    size = PAUSE_COLLECTOR + 200
    members = group(client.signature("jobs.add", (i, i)) for i in range(size))
    grouped = members.apply_async()
    plain = [client.send_task("jobs.noop") for _ in range(50)]
    added = [client.send_task("jobs.add", (i, 1)) for i in range(50)]
    with WorkerProcess(sqlite_or_redis_url, "-c", "2"):
        assert grouped.get(timeout=120) == [2 * i for i in range(size)]
        assert [r.get(timeout=30) for r in plain] == [None] * 50
        assert [r.get(timeout=30) for r in added] == [i + 1 for i in range(50)]
    ids = [grouped.id, *(r.id for r in grouped.results), *(r.id for r in plain + added)]
    assert len(set(ids)) == len(ids)
