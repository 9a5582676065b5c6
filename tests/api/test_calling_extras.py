"""Celery's calling guide beyond the basics: ``retry``/``retry_policy`` against a broker that is
down, ``compression`` and ``result_compression``, routes by ``Queue``/``Exchange``, and
``group(...).skew()``; each with a real worker subprocess where it matters."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celeriac, PublishError, group
from celeriac.brokers.base import PublishRetry
from celeriac.brokers.memory import MemoryBroker
from celeriac.brokers.redis import RedisBroker
from celeriac.exceptions import ConfigurationError, MalformedMessage, MessageTooLarge
from celeriac.message import Message
from celeriac.queues import Exchange, Queue
from celeriac.utils import uuid
from support.processes import WorkerProcess
from support.redis_server import RedisServer, RedisServerError, free_port
from support.waiting import wait_for


@pytest.fixture
def mem() -> Celeriac:
    return Celeriac("mem", broker=f"memory://calling-{uuid()}")


POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.05, "interval_max": 0.05}


def counting_sends(broker: RedisBroker) -> list[float]:
    """Record each try to write to Redis (its time), on this broker object."""
    tries: list[float] = []
    send = broker._send

    def counted(*args: Any) -> Any:
        tries.append(time.monotonic())
        return send(*args)

    broker._send = counted  # type: ignore[method-assign, assignment]
    return tries


def redis_or_skip() -> None:
    try:
        RedisServer().close()
    except RedisServerError as exc:  # pragma: no cover - redis-server is installed in CI
        pytest.skip(str(exc))


# -- retry and retry_policy ------------------------------------------------------------------------
def test_a_down_broker_with_a_small_policy_fails_after_its_retries() -> None:
    redis_or_skip()
    app = Celeriac("client", broker=f"redis://127.0.0.1:{free_port()}/0")
    app.conf.broker_publish_timeout = 30.0
    tries = counting_sends(app.broker)  # type: ignore[arg-type]
    with pytest.raises(PublishError, match="unreachable"):
        app.send_task("tasks.add", (2, 2), retry=True, retry_policy=POLICY)
    assert len(tries) == 1 + POLICY["max_retries"]
    assert tries[-1] - tries[0] < 30.0  # far below the bound: the policy ended it


def test_retry_false_fails_at_the_first_error() -> None:
    redis_or_skip()
    app = Celeriac("client", broker=f"redis://127.0.0.1:{free_port()}/0")
    tries = counting_sends(app.broker)  # type: ignore[arg-type]
    with pytest.raises(PublishError):
        app.send_task("tasks.add", (2, 2), retry=False)
    assert len(tries) == 1


def test_the_publish_timeout_bounds_an_endless_policy() -> None:
    redis_or_skip()
    app = Celeriac("client", broker=f"redis://127.0.0.1:{free_port()}/0")
    app.conf.broker_publish_timeout = 0.5
    endless = {"max_retries": None, "interval_start": 0.01, "interval_max": 0.05}
    started = time.monotonic()
    with pytest.raises(PublishError):
        app.send_task("tasks.add", (2, 2), retry_policy=endless)
    assert 0.4 < time.monotonic() - started < 10.0


def test_the_settings_give_the_policy(tmp_path: Path) -> None:
    redis_or_skip()
    app = Celeriac("client", broker=f"redis://127.0.0.1:{free_port()}/0")
    app.conf.task_publish_retry_policy = {**POLICY, "max_retries": 1}
    tries = counting_sends(app.broker)  # type: ignore[arg-type]
    with pytest.raises(PublishError):
        app.send_task("tasks.add", (2, 2))
    assert len(tries) == 2
    app.conf.task_publish_retry = False
    tries = counting_sends(app.broker)  # type: ignore[arg-type]
    with pytest.raises(PublishError):
        app.send_task("tasks.add", (2, 2))
    assert len(tries) == 1


def test_a_publish_retries_until_redis_is_back_and_the_worker_runs_it(tmp_path: Path) -> None:
    redis_or_skip()
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis") as server:
        url = server.url()
        app = Celeriac("client", broker=url)
        with WorkerProcess(url, "-P", "threads", "-c", "1") as worker:
            assert app.send_task("jobs.add", (1, 1)).get(timeout=30) == 2
            server.kill()
            tries = counting_sends(app.broker)  # type: ignore[arg-type]
            policy = {"max_retries": 10_000, "interval_step": 0.05, "interval_max": 0.1}
            sent: list[Any] = []
            errors: list[BaseException] = []

            def send() -> None:
                try:
                    sent.append(app.send_task("jobs.add", (2, 2), retry_policy=policy))
                except BaseException as exc:  # pragma: no cover - shown by the assert below
                    errors.append(exc)

            thread = threading.Thread(target=send)
            thread.start()
            assert wait_for(lambda: len(tries) >= 3, timeout=10)  # it is retrying
            server.start()
            thread.join(30)
            assert not errors and sent, errors
            assert sent[0].get(timeout=60) == 4
            worker.wait_for("succeeded", timeout=1)


def test_the_policy_is_checked_when_sending(mem: Celeriac) -> None:
    with pytest.raises(ConfigurationError, match="max_retrie"):
        mem.send_task("t", retry_policy={"max_retrie": 1})
    with pytest.raises(ConfigurationError, match="retry must be True or False"):
        mem.send_task("t", retry="yes")
    with pytest.raises(ConfigurationError, match="interval_max"):
        mem.send_task("t", retry_policy={"interval_max": -1})


class Flaky(MemoryBroker):
    """A memory broker whose first publishes fail."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures, self.tries = failures, 0

    def publish_many(self, messages: Any) -> None:
        self.tries += 1
        if self.tries <= self.failures:
            raise PublishError("down")
        super().publish_many(messages)


def test_any_broker_retries_a_publish_error_by_the_policy() -> None:
    broker = Flaky(failures=2)
    message = Message(id=uuid(), task="t", body=b"[[],{}]")
    broker.publish_retrying([message], PublishRetry(2, 0, 0.01, 0.01), timeout=10)
    assert broker.tries == 3
    broker = Flaky(failures=3)
    with pytest.raises(PublishError):
        broker.publish_retrying([message], PublishRetry(2, 0, 0.01, 0.01), timeout=10)
    assert broker.tries == 3


def test_policy_pauses_grow_by_step_up_to_max() -> None:
    pauses = list(PublishRetry(5, interval_start=0.1, interval_step=0.2, interval_max=0.4).pauses())
    assert pauses == pytest.approx([0.1, 0.3, 0.4, 0.4, 0.4])
    assert list(PublishRetry(0).pauses()) == []


# -- compression ---------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", ["zlib", "gzip", "bzip2", "lzma"])
def test_a_compressed_message_round_trips(compression: str) -> None:
    body = b'[["' + b"x" * 10_000 + b'"],{}]'
    message = Message(id="1", task="t", body=body, compression=compression)
    raw = message.encode()
    assert len(raw) < 2_000  # it travels compressed
    assert Message.decode(raw) == message
    assert Message.decode(raw).body == body


def test_a_compression_bomb_is_refused_within_the_limit() -> None:
    bomb = Message(id="1", task="t", body=b"[[]," + b" " * 50_000_000 + b"{}]", compression="zlib")
    with pytest.raises(MalformedMessage, match="message_max_bytes"):
        Message.decode(bomb.encode(), max_bytes=1_000_000)


def test_an_unknown_compression_is_an_error_at_the_call(mem: Celeriac) -> None:
    with pytest.raises(ConfigurationError, match="unknown compression 'snappy'"):
        mem.send_task("t", compression="snappy")
    mem.conf.task_compression = "brotli"
    with pytest.raises(ConfigurationError, match="unknown compression 'brotli'"):
        mem.send_task("t")
    with pytest.raises(ConfigurationError, match="unknown compression"):
        _ = Celeriac("x", broker="memory://c", result_compression="zstd").serializer


def test_the_sender_refuses_arguments_over_the_limit_before_compression(mem: Celeriac) -> None:
    mem.conf.message_max_bytes = 10_000
    with pytest.raises(MessageTooLarge, match="before compression"):
        mem.send_task("t", ("x" * 20_000,), compression="zlib")


def worker_env(sqlite_url: str, **env: str) -> WorkerProcess:
    return WorkerProcess(sqlite_url, "-P", "threads", "-c", "2", app="packed", **env)


@pytest.mark.parametrize("signed", [False, True])
def test_compressed_calls_and_results_with_a_real_worker(sqlite_url: str, signed: bool) -> None:
    key = "s3cret" if signed else ""
    client = Celeriac("packed", broker=sqlite_url, security_key=key or None)
    client.conf.result_compression = "bzip2"  # how it reads results needs no setting
    text = "celeriac " * 20_000
    env = {"CELERIAC_TEST_RESULT_COMPRESSION": "lzma", "CELERIAC_TEST_SECURITY_KEY": key}
    with worker_env(sqlite_url, **env):
        results = {
            name: client.send_task("packed.echo", (text,), compression=name)
            for name in ("zlib", "gzip", "bzip2", "lzma")
        }
        for result in results.values():
            assert result.get(timeout=30) == text
        record = client.backend.get(results["zlib"].id)
        assert record is not None
        assert record.content_type == "application/json;compression=lzma"
        assert len(record.payload) < len(text) // 10
        client.conf.task_compression = "gzip"
        assert client.send_task("packed.size", (text,)).get(timeout=30) == len(text)


def test_a_compression_bomb_is_refused_and_the_worker_goes_on(sqlite_url: str) -> None:
    client = Celeriac("packed", broker=sqlite_url)
    args = b'[["' + b"x" * (20 * 1024 * 1024) + b'"],{}]'  # 20 MiB: over message_max_bytes
    bomb = Message(id=uuid(), task="packed.size", body=args, compression="gzip")
    assert len(bomb.encode()) < 100_000
    with worker_env(sqlite_url) as worker:
        client.broker.publish(bomb)  # past the client's own check, as a hostile sender would
        with pytest.raises(MalformedMessage, match="message_max_bytes"):
            client.AsyncResult(bomb.id).get(timeout=30)
        assert client.send_task("packed.size", ("abc",)).get(timeout=30) == 3
        assert worker.process is not None and worker.process.poll() is None


# -- Queue and Exchange --------------------------------------------------------------------------
def test_routes_by_exchange_and_routing_key_pick_the_declared_queue(mem: Celeriac) -> None:
    mem.conf.task_queues = (
        Queue("default", Exchange("default"), routing_key="default"),
        Queue("videos", Exchange("media"), routing_key="media.video"),
        Queue("images", Exchange("media"), routing_key="media.image"),
    )
    mem.conf.task_routes = {"a": {"exchange": "media", "routing_key": "media.video"}}
    sender = mem.sender

    def queue(name: str, **options: Any) -> str:
        return sender.message(name, (), {}, options, task_defaults={}).queue

    assert queue("a") == "videos"
    assert queue("b", routing_key="media.image") == "images"
    assert queue("b", queue=Queue("images")) == "images"
    assert queue("b", routing_key="default") == "default"
    with pytest.raises(ConfigurationError, match="several queues"):
        queue("b", exchange="media")
    with pytest.raises(ConfigurationError, match="no queue of task_queues"):
        queue("b", routing_key="media.audio")


def test_what_amqp_does_beyond_one_queue_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigurationError, match="fanout"):
        Exchange("news", type="fanout")
    with pytest.raises(ConfigurationError, match="wildcards"):
        Queue("all", Exchange("media", type="topic"), routing_key="media.*")
    assert Queue("p", queue_arguments={"x-max-priority": 10}).routing_key == "p"


def test_a_worker_consumes_the_queue_a_route_picked(sqlite_url: str) -> None:
    from apps import routed  # its settings; the worker imports it as ``routed``

    client = Celeriac("client", broker=sqlite_url)
    for name in ("task_queues", "task_routes", "task_default_queue"):
        client.conf[name] = routed.app.conf[name]
    encode = client.send_task("routed.encode", ("cat.mp4",))
    thumbnail = client.send_task("routed.thumbnail", ("cat.png",))
    with WorkerProcess(sqlite_url, "-Q", "videos", "-P", "threads", app="routed"):
        assert encode.get(timeout=30) == "encoded cat.mp4"
    # without -Q, a worker consumes every queue of task_queues, as Celery's does
    with WorkerProcess(sqlite_url, "-P", "threads", app="routed"):
        assert thumbnail.get(timeout=30) == "thumbnail of cat.png"
        assert client.send_task("routed.plain").get(timeout=30) == "default"


# -- skew and uuid -------------------------------------------------------------------------------
def test_skew_spreads_countdowns(mem: Celeriac) -> None:
    @mem.task
    def f(x: int) -> int:
        return x

    g = group(f.s(i) for i in range(5)).skew(start=1, stop=3, step=1)
    assert [t.options["countdown"] for t in g.tasks] == [1.0, 2.0, 3.0, 3.0, 3.0]
    g = group(f.s(i) for i in range(3)).skew(step=0.5)
    assert [t.options["countdown"] for t in g.tasks] == [1.0, 1.5, 2.0]


def test_skewed_group_runs(mem: Celeriac) -> None:
    @mem.task
    def f(x: int) -> int:
        return x

    task_id = uuid()
    assert isinstance(task_id, str) and len(task_id) == 36
    result = f.apply_async((1,), task_id=task_id)
    assert result.id == task_id
