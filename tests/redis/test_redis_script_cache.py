"""Scripts are called by SHA (``EVALSHA``): the source travels only when Redis lost it, and a
broker and a backend keep working when it does (``SCRIPT FLUSH``, a restart)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from celeriac import Celeriac, states
from celeriac.backends.base import ResultRecord
from celeriac.backends.redis import RedisBackend
from celeriac.brokers.redis import CHUNK, RedisBroker
from celeriac.message import Message
from support.redis_server import RedisServer


def _message(queue: str = "q") -> Message:
    return Message(id=uuid.uuid4().hex, task="t", body=b"[[],{}]", queue=queue)


def _stats(server: RedisServer) -> dict[str, dict[str, int]]:
    stats = server.client().info("commandstats")
    return {
        name: {key: int(stats.get(f"cmdstat_{name}", {}).get(key, 0)) for key in ("calls",)}
        | {"failed": int(stats.get(f"cmdstat_{name}", {}).get("failed_calls", 0))}
        for name in ("eval", "evalsha")
    }


def _turn(app: Celeriac, task_id: str) -> None:
    """One worker turn: publish, lease, then store a result, ack and lease again in a batch."""
    broker, backend = app.broker, app.backend
    broker.publish(_message())
    (held,) = broker.fetch(["q"], 1, lease=30, consumer="w", timeout=0)
    with broker.batch():
        backend.store_many([ResultRecord(task_id, states.SUCCESS, b"1")], expires=60)
        broker.ack_many([held])
        broker.fetch(["q"], 1, lease=30, consumer="w", timeout=0)
    record = backend.get(task_id)
    assert record is not None and record.payload == b"1"


def _flush(server: RedisServer) -> None:
    server.client().script_flush()


def _restart(server: RedisServer) -> None:
    server.restart()


@pytest.mark.parametrize("lose", [_flush, _restart], ids=["script-flush", "restart"])
def test_broker_and_backend_work_on_after_redis_loses_its_scripts(
    redis_server: RedisServer, lose: Callable[[RedisServer], None]
) -> None:
    app = Celeriac("x", broker=redis_server.url())
    assert isinstance(app.broker, RedisBroker) and isinstance(app.backend, RedisBackend)
    _turn(app, "before")
    lose(redis_server)
    redis_server.client().config_resetstat()
    _turn(app, "after")  # every script answers NOSCRIPT once, then runs by its source
    stats = _stats(redis_server)
    assert stats["evalsha"]["failed"] >= 3 and stats["eval"]["calls"] >= 3, stats
    redis_server.client().config_resetstat()
    _turn(app, "again")
    stats = _stats(redis_server)
    assert stats["eval"]["calls"] == 0, stats  # known again: by SHA only
    assert stats["evalsha"]["failed"] == 0, stats
    app.close()


def test_a_waiting_fetch_and_get_work_on_after_a_script_flush(redis_server: RedisServer) -> None:
    app = Celeriac("x", broker=redis_server.url())
    broker, backend = app.broker, app.backend
    assert broker.fetch(["q"], 1, lease=30, consumer="w", timeout=0.2) == []
    _flush(redis_server)
    # The fetch behind the BLPOP comes by SHA: NOSCRIPT, then by its source, still one call.
    assert broker.fetch(["q"], 1, lease=30, consumer="w", timeout=0.2) == []
    broker.publish(_message())
    assert len(broker.fetch(["q"], 1, lease=30, consumer="w", timeout=0.2)) == 1
    backend.store_many([ResultRecord("t", states.SUCCESS, b"2")], expires=60)
    _flush(redis_server)
    record = backend.wait("t", timeout=1.0)
    assert record is not None and record.payload == b"2"
    app.close()


def test_a_publish_of_many_chunks_after_a_script_flush_stores_every_chunk(
    redis_server: RedisServer,
) -> None:
    broker = RedisBroker(redis_server.url())
    broker.publish(_message())
    _flush(redis_server)
    # One MULTI of several script calls: sent with their source, so none can fail alone.
    broker.publish_many([_message() for _ in range(CHUNK * 2 + 1)])
    assert broker.queue_lengths(["q"]) == {"q": CHUNK * 2 + 2}
    broker.close()


def test_a_script_error_is_raised_as_before_and_the_connection_kept(
    redis_server: RedisServer,
) -> None:
    broker = RedisBroker(redis_server.url())
    redis_server.client().set("celeriac:messages", "not a hash")
    with pytest.raises(Exception, match="celeriac:messages"):
        broker.publish(_message())
    redis_server.client().delete("celeriac:messages")
    broker.publish(_message())
    assert broker.queue_lengths(["q"]) == {"q": 1}
    broker.close()
