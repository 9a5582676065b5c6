"""The asynchronous methods of the broker and backend contracts, on every store: the thread
defaults (memory, SQLite) and Redis's own (redis-py's asyncio client), held to one behaviour."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import states
from celeriac.backends.base import ResultBackend, ResultRecord
from celeriac.backends.memory import MemoryBackend
from celeriac.backends.sqlite import SqliteBackend
from celeriac.brokers.base import Broker, PublishRetry
from celeriac.brokers.memory import MemoryBroker
from celeriac.brokers.sqlite import SqliteBroker
from celeriac.message import Message
from support.clock import FakeClock
from support.stores import redis_test_options, redis_test_url, unique_name


def _stores(kind: str, tmp_path: Path, clock: FakeClock) -> tuple[Broker, ResultBackend]:
    if kind == "memory":
        return MemoryBroker(unique_name(), clock=clock), MemoryBackend(unique_name(), clock=clock)
    if kind == "sqlite":
        path = str(tmp_path / "s.db")
        return SqliteBroker(path, clock=clock), SqliteBackend(path, clock=clock)
    from celeriac.backends.redis import RedisBackend
    from celeriac.brokers.redis import RedisBroker

    options = redis_test_options()
    url = redis_test_url()
    return RedisBroker(url, options, clock=clock), RedisBackend(url, options, clock=clock)


@pytest.fixture(params=["memory", "redis", "sqlite"])
def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Broker, ResultBackend]]:
    """A fresh broker and backend of each kind, on one store."""
    broker, backend = _stores(request.param, tmp_path, FakeClock())
    yield broker, backend
    broker.close()
    backend.close()


def _message(queue: str = "q", eta: float | None = None) -> Message:
    return Message(id=uuid.uuid4().hex, task="tests.noop", body=b"[[],{}]", queue=queue, eta=eta)


def _fetch(broker: Broker, queues: list[str]) -> list[bytes]:
    return [d.body for d in broker.fetch(queues, 100, lease=30, consumer="t", timeout=0)]


def test_apublish_many_stores_what_publish_many_stores(
    stores: tuple[Broker, ResultBackend],
) -> None:
    broker, _ = stores
    messages = [_message("a"), _message("b"), _message("a")]
    later = _message("a", eta=broker.clock() + 60)
    retried = [_message("b")]

    async def main() -> None:
        await broker.apublish_many([*messages, later])
        await broker.apublish_retrying(retried, PublishRetry(max_retries=1), timeout=5)
        await broker.apublish_many([])

    asyncio.run(main())
    assert sorted(_fetch(broker, ["a", "b"])) == sorted(m.encode() for m in messages + retried)
    assert broker.queue_lengths(["a"]) == {"a": 3}  # the delayed one waits for its ETA


def test_await_result_is_woken_by_a_store_and_times_out_without_one(
    stores: tuple[Broker, ResultBackend],
) -> None:
    _, backend = stores
    record = ResultRecord("t1", states.SUCCESS, b"7")

    def store_soon() -> None:
        backend.store(record, expires=60)

    async def main() -> tuple[ResultRecord | None, ...]:
        nothing = await backend.await_result("t1", 0.2)
        pending = await backend.await_result("t1", 0)
        timer = threading.Timer(0.3, store_soon)
        timer.start()
        try:
            woken = await backend.await_result("t1", 30)
        finally:
            timer.join()
        return nothing, pending, woken, await backend.await_result("t1", None)

    nothing, pending, woken, again = asyncio.run(main())
    assert nothing is None and pending is None
    assert woken is not None and woken.state == states.SUCCESS and woken.payload == b"7"
    assert again == woken


def test_await_result_returns_a_record_that_is_not_final_when_the_time_runs_out(
    stores: tuple[Broker, ResultBackend],
) -> None:
    _, backend = stores
    backend.store(ResultRecord("t2", states.STARTED), expires=60)
    found = asyncio.run(backend.await_result("t2", 0.2))
    assert found is not None and found.state == states.STARTED


def test_aput_document_stores_what_put_document_stores(
    stores: tuple[Broker, ResultBackend],
) -> None:
    _, backend = stores
    document = {"result": {"id": "g", "results": [{"id": "a"}]}}

    async def main() -> None:
        await backend.aput_document("group:g", document, expires=60)
        await backend.aput_document("forever", {"n": 1}, expires=None)

    asyncio.run(main())
    assert backend.get_document("group:g") == document
    assert backend.get_document("forever") == {"n": 1}
