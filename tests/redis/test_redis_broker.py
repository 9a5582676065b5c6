"""What the Redis broker and backend promise beyond the conformance suites: one round trip per
worker turn, waiting without polling, and the shortcuts being safe."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from celeriac import Celeriac, states
from celeriac.backends.base import ResultRecord
from celeriac.backends.redis import RedisBackend
from celeriac.brokers.redis import RedisBroker
from celeriac.message import Message
from support.redis_server import RedisServer


def _message(queue: str = "q", **fields: object) -> Message:
    return Message(id=uuid.uuid4().hex, task="t", body=b"[[],{}]", queue=queue, **fields)  # type: ignore[arg-type]


def _calls(server: RedisServer) -> dict[str, int]:
    stats = server.client().info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def _script_runs(server: RedisServer) -> int:
    """Scripts run (by source or by SHA), not counting an EVALSHA answered NOSCRIPT."""
    stats = server.client().info("commandstats")
    runs = [stats.get(f"cmdstat_{name}", {}) for name in ("eval", "evalsha")]
    return sum(int(v.get("calls", 0)) - int(v.get("failed_calls", 0)) for v in runs)


def _reset(server: RedisServer) -> None:
    server.client().config_resetstat()


def test_a_worker_turn_is_one_round_trip(redis_server: RedisServer) -> None:
    app = Celeriac("x", broker=redis_server.url())
    broker, backend = app.broker, app.backend
    assert isinstance(broker, RedisBroker) and isinstance(backend, RedisBackend)
    broker.publish_many([_message(), _message()])
    (held,) = broker.fetch(["q"], 1, lease=30, consumer="w", timeout=0)
    _reset(redis_server)

    with broker.batch():
        backend.store_many([ResultRecord("t1", states.SUCCESS, b"1")], expires=60)
        assert broker.ack_many([held]) == [True]
        fresh = broker.fetch(["q"], 1, lease=30, consumer="w", timeout=0)

    calls = _calls(redis_server)
    assert _script_runs(redis_server) == 1, calls  # store, ack and fetch: one composed script
    assert len(fresh) == 1
    assert backend.get("t1") is not None
    assert broker.queue_lengths(["q"]) == {"q": 1}
    app.close()


def test_settlements_in_a_batch_are_sent_at_its_end_and_refusals_logged(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    broker = RedisBroker(redis_server.url())
    broker.publish(_message())
    (stale,) = broker.fetch(["q"], 1, lease=0.5, consumer="w", timeout=0)
    time.sleep(0.6)
    (current,) = broker.fetch(["q"], 1, lease=30, consumer="w", timeout=0)

    with caplog.at_level(logging.WARNING, "celeriac.brokers.redis"), broker.batch():
        assert broker.ack_many([stale]) == [True]  # provisional inside a batch
        assert broker.queue_lengths(["q"]) == {"q": 1}  # a read sends what was queued first
    assert "refused: its lease was lost" in caplog.text
    assert broker.ack(current) is True


def test_an_exception_inside_a_batch_drops_what_it_queued(redis_server: RedisServer) -> None:
    broker = RedisBroker(redis_server.url())
    broker.publish(_message())
    (held,) = broker.fetch(["q"], 1, lease=30, consumer="w", timeout=0)
    with pytest.raises(RuntimeError), broker.batch():
        broker.ack(held)
        raise RuntimeError("the turn failed")
    assert broker.queue_lengths(["q"]) == {"q": 1}
    assert broker.ack(held) is True


def test_a_waiting_fetch_blocks_instead_of_polling(redis_server: RedisServer) -> None:
    broker = RedisBroker(redis_server.url())
    _reset(redis_server)
    started = time.monotonic()
    assert broker.fetch(["q"], 10, lease=30, consumer="w", timeout=1.0) == []
    assert time.monotonic() - started >= 0.9
    assert _script_runs(redis_server) <= 2  # one look, one blocked wait and a look


def test_a_waiting_fetch_wakes_at_the_eta_of_a_delayed_message(redis_server: RedisServer) -> None:
    broker = RedisBroker(redis_server.url())
    broker.publish(_message(eta=broker.clock() + 0.3))
    started = time.monotonic()
    (delivery,) = broker.fetch(["q"], 10, lease=30, consumer="w", timeout=5)
    waited = time.monotonic() - started
    assert 0.25 <= waited < 1.0
    assert delivery.attempt == 1


def test_waiting_fetches_wake_one_another_for_work_left_behind(redis_server: RedisServer) -> None:
    brokers = [RedisBroker(redis_server.url()) for _ in range(3)]
    got: list[int] = []

    def consume(broker: RedisBroker) -> None:
        got.append(len(broker.fetch(["q"], 1, lease=30, consumer="w", timeout=3)))

    threads = [threading.Thread(target=consume, args=(b,)) for b in brokers]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # all three are blocked now
    started = time.monotonic()
    brokers[0].publish_many([_message(), _message(), _message()])  # one wake-up, three fetches
    for thread in threads:
        thread.join()
    assert sorted(got) == [1, 1, 1]
    assert time.monotonic() - started < 1.0


def test_a_broadcast_after_a_fetch_is_never_missed(redis_server: RedisServer) -> None:
    broker = RedisBroker(redis_server.url())
    _, cursor = broker.read_broadcasts(None)
    broker.publish(_message())
    broker.fetch(["q"], 1, lease=30, consumer="w", timeout=0.1)  # reports: nothing new
    assert broker.read_broadcasts(cursor) == ([], cursor)
    other = RedisBroker(redis_server.url())
    other.broadcast(b"revoke")
    assert broker.read_broadcasts(cursor)[0] == [b"revoke"]


def test_get_is_woken_by_the_store_not_by_polling(redis_server: RedisServer) -> None:
    backend = RedisBackend(redis_server.url())
    storer = RedisBackend(redis_server.url())

    def store_later() -> None:
        time.sleep(0.3)
        storer.store(ResultRecord("t1", states.SUCCESS, b'"done"'))

    thread = threading.Thread(target=store_later)
    _reset(redis_server)
    started = time.monotonic()
    thread.start()
    record = backend.wait("t1", timeout=5)
    thread.join()
    assert record is not None and record.payload == b'"done"'
    assert time.monotonic() - started < 1.0
    assert _calls(redis_server).get("blpop", 0) == 1  # one wait, woken once; no polling
