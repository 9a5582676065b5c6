"""Celery's signals fire with Celery's arguments, sent by the built-in middleware."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac import Celeriac, states
from celeriac import signals as sig
from celeriac.beat import embedded_beat
from celeriac.signals import Signal
from celeriac.testing import in_process_worker, use_memory
from support.waiting import wait_for
from support.workers import worker_running

Heard = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def heard() -> Iterator[Heard]:
    """Every Celery signal, each call recorded as ``(signal name, arguments)``."""
    calls: Heard = []
    receivers: list[tuple[Signal, Callable[..., None]]] = []
    for name in sig.__all__:
        signal = getattr(sig, name)
        if not isinstance(signal, Signal):
            continue

        def receiver(name: str = name, **kwargs: Any) -> None:
            calls.append((name, kwargs))

        signal.connect(receiver)
        receivers.append((signal, receiver))
    yield calls
    for signal, receiver in receivers:
        signal.disconnect(receiver)


@pytest.fixture
def app() -> Iterator[Celeriac]:
    made = Celeriac("signals")
    with use_memory(made):
        yield made


def of(heard: Heard, name: str) -> list[dict[str, Any]]:
    return [kwargs for called, kwargs in heard if called == name]


def test_publish_signals_carry_the_task_name_body_and_headers(app: Celeriac, heard: Heard) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.apply_async((2, 3), queue="maths", countdown=5)
    (before,) = of(heard, "before_task_publish")
    (after,) = of(heard, "after_task_publish")
    assert before["sender"] == after["sender"] == add.name
    assert before["headers"]["id"] == after["headers"]["id"] == result.id
    assert before["headers"]["task"] == add.name and before["headers"]["eta"] is not None
    assert before["body"][:2] == ([2, 3], {})
    assert before["routing_key"] == after["routing_key"] == "maths"
    assert {"exchange", "properties", "declare", "retry_policy"} <= set(before)


def test_a_header_added_before_publish_travels_with_the_message(
    app: Celeriac, heard: Heard
) -> None:
    @app.task(bind=True)
    def tagged(self: Any) -> Any:
        return self.request.headers.get("tenant")

    def add_tenant(headers: dict[str, Any], **kwargs: Any) -> None:
        headers["tenant"] = "acme"

    sig.before_task_publish.connect(add_tenant)
    try:
        result = tagged.delay()
    finally:
        sig.before_task_publish.disconnect(add_tenant)
    in_process_worker(app).drain()
    assert result.get(timeout=1) == "acme"


def test_run_signals_carry_the_task_its_arguments_and_what_it_returned(
    app: Celeriac, heard: Heard
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    in_process_worker(app).drain()
    (prerun,) = of(heard, "task_prerun")
    assert prerun["sender"] is add and prerun["task"] is add
    assert (prerun["task_id"], prerun["args"], prerun["kwargs"]) == (result.id, [2, 3], {})
    (success,) = of(heard, "task_success")
    assert success["sender"] is add and success["result"] == 5
    (postrun,) = of(heard, "task_postrun")
    assert (postrun["task_id"], postrun["retval"], postrun["state"]) == (result.id, 5, "SUCCESS")
    assert [name for name, _ in heard if name.startswith("task_")] == [
        "task_received",  # the worker took the message, before it ran
        "task_prerun",
        "task_success",
        "task_postrun",
    ]


def test_failure_and_retry_signals_carry_the_exception_and_its_info(
    app: Celeriac, heard: Heard
) -> None:
    @app.task
    def fail(x: int) -> None:
        raise KeyError("no such key")

    @app.task(bind=True, max_retries=1, default_retry_delay=0)
    def flaky(self: Any) -> str:
        if self.request.retries == 0:
            raise self.retry(exc=ValueError("first try"))
        return "ok"

    failed, retried = fail.delay(7), flaky.delay()
    worker = in_process_worker(app)
    worker.drain()
    worker.drain()
    assert retried.get(timeout=1) == "ok"
    (failure,) = of(heard, "task_failure")
    assert failure["sender"] is fail and failure["task_id"] == failed.id
    assert isinstance(failure["exception"], KeyError) and failure["args"] == [7]
    assert failure["traceback"] is failure["exception"].__traceback__
    assert "no such key" in failure["einfo"].traceback
    (retry,) = of(heard, "task_retry")
    assert retry["sender"] is flaky and retry["request"].id == retried.id
    assert isinstance(retry["reason"], ValueError) and retry["einfo"].type is ValueError
    postrun_states = [k["state"] for k in of(heard, "task_postrun")]
    assert sorted(postrun_states) == ["FAILURE", "RETRY", "SUCCESS"]


def test_revoked_signal_says_whether_it_expired(app: Celeriac, heard: Heard) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    revoked = add.delay(1, 1)
    revoked.revoke()
    expired = add.apply_async((1, 1), expires=-1)
    in_process_worker(app).drain()
    found = {k["request"].id: k for k in of(heard, "task_revoked")}
    assert set(found) == {revoked.id, expired.id}
    assert found[revoked.id]["sender"] is add
    assert (found[revoked.id]["expired"], found[revoked.id]["terminated"]) == (False, False)
    assert found[expired.id]["expired"] is True
    assert expired.state == states.REVOKED
    assert not of(heard, "task_prerun")


def test_eager_runs_send_the_run_signals_too(app: Celeriac, heard: Heard) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add.apply((1, 2)).get() == 3
    assert [name for name, _ in heard] == ["task_prerun", "task_success", "task_postrun"]


def test_worker_ready_and_shutdown_are_sent_with_the_worker(app: Celeriac, heard: Heard) -> None:
    with worker_running(app, pool="threads", concurrency=1) as worker:
        assert wait_for(lambda: of(heard, "worker_ready"), 10)
    assert [k["sender"] for k in of(heard, "worker_ready")] == [worker]
    assert [k["sender"] for k in of(heard, "worker_shutdown")] == [worker]


def test_beat_init_is_sent_when_beat_starts(app: Celeriac, heard: Heard) -> None:
    with embedded_beat(app) as beat:
        assert wait_for(lambda: of(heard, "beat_init"), 10)
    assert [k["sender"] for k in of(heard, "beat_init")] == [beat]


def test_a_receiver_that_raises_is_logged_and_the_others_still_run(
    app: Celeriac, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    calls: list[str] = []

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    def working(**kwargs: Any) -> None:
        calls.append("ran")

    sig.task_prerun.connect(broken)
    sig.task_prerun.connect(working)
    try:
        result = add.delay(1, 1)
        in_process_worker(app).drain()
    finally:
        sig.task_prerun.disconnect(broken)
        sig.task_prerun.disconnect(working)
    assert result.get(timeout=1) == 2
    assert calls == ["ran"]
    assert "receiver" in caplog.text and "broken" in caplog.text


def test_a_receiver_can_listen_to_one_task_by_object_or_name(app: Celeriac) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def mul(x: int, y: int) -> int:
        return x * y

    by_object: list[Any] = []
    by_name: list[Any] = []

    def on_add(sender: Any = None, **kwargs: Any) -> None:
        by_object.append(sender.name)

    def on_mul(sender: Any = None, **kwargs: Any) -> None:
        by_name.append(sender.name)

    sig.task_success.connect(on_add, sender=add)
    sig.task_success.connect(on_mul, sender=mul.name)
    try:
        add.delay(1, 1), mul.delay(2, 2)
        in_process_worker(app).drain()
    finally:
        sig.task_success.disconnect(on_add)
        sig.task_success.disconnect(on_mul)
    assert (by_object, by_name) == ([add.name], [mul.name])
