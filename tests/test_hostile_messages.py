"""Hostile bytes in the broker: each is dead-lettered on its first delivery with a reason that
names what is wrong, the worker's main process never dies of it, good messages around it all
finish, and nothing is written under a task id the worker cannot trust.

Each case writes raw bytes straight into the broker (as a buggy client in another language, a
corrupted key or an attacker inside the network would), between good calls, on SQLite and on
Redis. An in-process worker drains them; one test runs the real ``celeriac worker`` and checks
that its main process is the same one before and after a batch of them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celeriac, states
from celeriac.exceptions import MalformedMessage, MessageTooLarge
from celeriac.message import Message
from celeriac.testing import in_process_worker
from support.processes import WorkerProcess
from support.redis_server import shared_server
from support.waiting import wait_for

BROKERS = ["sqlite", "redis"]


@pytest.fixture(params=BROKERS)
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hostile.db'}"
    return shared_server().url()


def make_app(url: str, prefix: str, **settings: Any) -> Celeriac:
    """An app on ``url``; on Redis, with a key prefix that keeps this test's keys apart."""
    if url.startswith("redis"):
        settings["broker_transport_options"] = {"global_keyprefix": prefix}
    app = Celeriac("hostile", broker=url, **settings)

    @app.task(name="hostile.double")
    def double(x: int) -> int:
        return 2 * x

    return app


@pytest.fixture
def app(broker_url: str) -> Iterator[Celeriac]:
    made = make_app(broker_url, f"hostile-{uuid.uuid4().hex}:")
    yield made
    made.close()


def write_raw(app: Celeriac, raw: bytes, task_id: str | None = None) -> str:
    """Put ``raw`` in the default queue as if it were a message; returns the id it claims."""
    carrier = Message(id=task_id or str(uuid.uuid4()), task="hostile.double", body=b"")
    carrier.__dict__["_encoded"] = raw  # the broker stores exactly these bytes
    app.broker.publish(carrier)
    return carrier.id


def header(task_id: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "id": task_id, "task": "hostile.double", "sent_at": 1.0, **fields}


def raw_message(head: dict[str, Any], body: bytes = b"[[1],{}]") -> bytes:
    return json.dumps(head).encode() + b"\n" + body


def drain_around(app: Celeriac, write: Any) -> list[str]:
    """Five good calls, the hostile bytes, five more; drain once; check every good one and
    that one message was dead-lettered; return the dead letters' reasons."""
    before = [app.send_task("hostile.double", (i,)) for i in range(5)]
    write()
    after = [app.send_task("hostile.double", (i,)) for i in range(5, 10)]
    worker = in_process_worker(app)
    try:
        worker.drain()
    finally:
        worker.close()
    assert [r.get(timeout=5) for r in before + after] == [2 * i for i in range(10)]
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    letters = app.broker.dead_letters()
    assert len(letters) == 1
    return [letter.reason for letter in letters]


# (field, forged value, what the reason names)
WRONG_FIELDS = [
    ("time_limit", "10", "'time_limit'"),
    ("soft_time_limit", "soon", "'soft_time_limit'"),
    ("expires", "tomorrow", "'expires'"),
    ("eta", "later", "'eta'"),
    ("ignore_result", "no", "'ignore_result'"),
    ("retries", "x", "'retries'"),
    ("priority", "9", "'priority'"),
    ("workflow", {"chain": "hostile.double"}, "workflow entry 'chain'"),
]


@pytest.mark.parametrize(("name", "value", "named"), WRONG_FIELDS, ids=[f[0] for f in WRONG_FIELDS])
def test_a_wrong_typed_header_field_is_dead_lettered_at_once_naming_it(
    app: Celeriac, name: str, value: object, named: str
) -> None:
    task_id = str(uuid.uuid4())
    raw = raw_message(header(task_id, **{name: value}))
    (reason,) = drain_around(app, lambda: write_raw(app, raw, task_id))
    assert named in reason
    result = app.AsyncResult(task_id)
    assert result.state == states.FAILURE  # no signing: recorded, so nobody waits forever
    assert result.retries == 0  # and its state reads back (a forged "retries" broke that)
    with pytest.raises(MalformedMessage, match=name):
        result.get(timeout=1)


def test_a_header_nested_100000_deep_is_dead_lettered_at_once(app: Celeriac) -> None:
    raw = b'{"id": "deep", "task": "hostile.double", "headers": ' + b"[" * 100_000 + b"\n[[],{}]"
    (reason,) = drain_around(app, lambda: write_raw(app, raw))
    assert "nested too deep" in reason


def test_a_truncated_message_is_dead_lettered_at_once(app: Celeriac) -> None:
    task_id = str(uuid.uuid4())
    full = raw_message(header(task_id))
    (reason,) = drain_around(app, lambda: write_raw(app, full[: len(full) // 3], task_id))
    assert "not a celeriac message" in reason or "not JSON" in reason


def test_a_100_mb_message_is_dead_lettered_before_it_is_read(app: Celeriac) -> None:
    task_id = str(uuid.uuid4())
    huge = raw_message(header(task_id), b"[[" + b"1," * (50 * 1024 * 1024) + b"1],{}]")
    (reason,) = drain_around(app, lambda: write_raw(app, huge, task_id))
    assert "over message_max_bytes" in reason
    with pytest.raises(MessageTooLarge):
        app.AsyncResult(task_id).get(timeout=1)


def signing_apps(url: str) -> tuple[Celeriac, Celeriac]:
    prefix = f"hostile-{uuid.uuid4().hex}:"
    return make_app(url, prefix, security_key="k"), make_app(url, prefix)


def test_a_forged_message_cannot_choose_a_real_tasks_result(broker_url: str) -> None:
    worker_app, forger = signing_apps(broker_url)
    try:
        real_id = str(uuid.uuid4())  # a task the client has sent, or is about to: PENDING
        forged = raw_message(header(real_id))  # unsigned, claiming the real task's id
        (reason,) = drain_around(worker_app, lambda: write_raw(forger, forged, real_id))
        assert "not signed" in reason
        assert worker_app.AsyncResult(real_id).state == states.PENDING  # nothing written
        real = worker_app.send_task("hostile.double", (21,), task_id=real_id)
        worker = in_process_worker(worker_app)
        try:
            worker.drain()
        finally:
            worker.close()
        assert real.get(timeout=5) == 42
    finally:
        worker_app.close()
        forger.close()


def test_a_message_with_a_wrong_signature_writes_nothing(broker_url: str) -> None:
    worker_app, forger = signing_apps(broker_url)
    try:
        task_id = str(uuid.uuid4())
        unsigned = raw_message(header(task_id))
        forged = b"sig " + b"0" * 64 + b"\n" + unsigned
        (reason,) = drain_around(worker_app, lambda: write_raw(forger, forged, task_id))
        assert "signature does not match" in reason
        assert worker_app.AsyncResult(task_id).state == states.PENDING
    finally:
        worker_app.close()
        forger.close()


HOSTILE = [
    raw_message(header("h-time-limit", time_limit="10")),
    raw_message(header("h-soft", soft_time_limit="x")),
    raw_message(header("h-expires", expires="tomorrow")),
    raw_message(header("h-ignore", ignore_result="no")),
    b'{"id": "h-deep", "task": "hostile.double", "headers": ' + b"[" * 100_000 + b"\n[[],{}]",
    b'{"id": "h-cut", "task": "hosti',
    b"\xff\xfe not even text",
]


def test_the_real_worker_survives_a_batch_of_hostile_messages(
    broker_url: str, tmp_path: Path
) -> None:
    """The same main process before and after: no crash, no restart, each dead-lettered on
    its first delivery, and the good calls sent after them all finish."""
    prefix = f"hostile-{uuid.uuid4().hex}:"
    client = make_app(broker_url, prefix)
    env = {"CELERIAC_TEST_KEYPREFIX": prefix} if broker_url.startswith("redis") else {}
    try:
        with WorkerProcess(broker_url, "-c", "2", **env) as worker:
            pid = worker.pid
            for raw in HOSTILE:
                write_raw(client, raw)
            good = [client.send_task("jobs.add", (i, i)) for i in range(20)]
            assert [r.get(timeout=30) for r in good] == [2 * i for i in range(20)]
            assert wait_for(lambda: len(client.broker.dead_letters()) == len(HOSTILE), 10)
            assert worker.process is not None and worker.process.poll() is None
            assert worker.pid == pid
        letters = client.broker.dead_letters()
        assert len(letters) == len(HOSTILE)
        assert client.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
        assert "Traceback" not in worker.output  # nothing escaped into the main loop
    finally:
        client.close()
