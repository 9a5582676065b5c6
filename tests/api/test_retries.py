"""Retrying: ``self.retry``, ``autoretry_for``, backoff, and the Reject / Ignore predicates."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import (
    Celeriac,
    ConfigurationError,
    Ignore,
    MaxRetriesExceededError,
    Reject,
    Task,
    states,
)
from celeriac.retries import backoff_delay
from celeriac.worker import Worker
from support.clock import FakeClock


def test_retry_with_exc_keyword_and_positional(app: Celeriac, worker: Worker) -> None:
    seen: dict[str, list[int]] = {"keyword": [], "positional": []}

    @app.task(bind=True, max_retries=5)
    def flaky(self: Task[Any, Any], style: str, fail_times: int) -> int:
        seen[style].append(self.request.retries)
        try:
            if self.request.retries < fail_times:
                raise ConnectionError("network down")
        except ConnectionError as exc:
            if style == "keyword":
                raise self.retry(exc=exc, countdown=0) from exc
            raise self.retry(exc, countdown=0) from exc
        return self.request.retries

    keyword = flaky.delay("keyword", 2)
    positional = flaky.delay("positional", 3)
    worker.drain()
    assert keyword.get(timeout=1) == 2
    assert positional.get(timeout=1) == 3
    assert seen == {"keyword": [0, 1, 2], "positional": [0, 1, 2, 3]}
    assert (keyword.retries, positional.retries) == (2, 3)
    assert keyword.state == states.SUCCESS


def test_max_retries_exceeded_reraises_the_original_exception(
    app: Celeriac, worker: Worker
) -> None:
    runs: list[int] = []

    @app.task(bind=True, max_retries=2)
    def hopeless(self: Task[Any, Any]) -> None:
        runs.append(self.request.retries)
        try:
            raise ConnectionError("still down")
        except ConnectionError as exc:
            raise self.retry(exc=exc, countdown=0) from exc

    result = hopeless.delay()
    worker.drain()
    assert runs == [0, 1, 2]
    assert result.state == states.FAILURE
    assert result.retries == 2
    with pytest.raises(ConnectionError, match="still down"):
        result.get(timeout=1)


def test_max_retries_option_of_retry_overrides_the_task(app: Celeriac, worker: Worker) -> None:
    runs: list[int] = []

    @app.task(bind=True, max_retries=10)
    def hopeless(self: Task[Any, Any]) -> None:
        runs.append(self.request.retries)
        raise self.retry(exc=ValueError("no"), countdown=0, max_retries=1)

    result = hopeless.delay()
    worker.drain()
    assert runs == [0, 1]
    with pytest.raises(ValueError, match="no"):
        result.get(timeout=1)


def test_retry_without_exc_raises_max_retries_exceeded(app: Celeriac, worker: Worker) -> None:
    @app.task(bind=True, max_retries=1)
    def hopeless(self: Task[Any, Any]) -> None:
        raise self.retry(countdown=0)

    result = hopeless.delay()
    worker.drain()
    assert result.state == states.FAILURE
    with pytest.raises(MaxRetriesExceededError):
        result.get(timeout=1)


def test_max_retries_none_retries_until_it_succeeds(app: Celeriac, worker: Worker) -> None:
    @app.task(bind=True, max_retries=None)
    def stubborn(self: Task[Any, Any]) -> int:
        if self.request.retries < 12:
            raise self.retry(countdown=0)
        return self.request.retries

    result = stubborn.delay()
    worker.drain()
    assert result.get(timeout=1) == 12


def test_retry_countdown_is_honoured(
    clocked_app: Celeriac, clocked_worker: Worker, clock: FakeClock
) -> None:
    runs: list[int] = []

    @clocked_app.task(bind=True)
    def later(self: Task[Any, Any]) -> int:
        runs.append(self.request.retries)
        if not self.request.retries:
            raise self.retry(exc=TimeoutError("slow"), countdown=60)
        return self.request.retries

    result = later.delay()
    clocked_worker.drain()
    assert runs == [0]
    assert result.state == states.RETRY
    assert isinstance(result.info, TimeoutError)
    clock.advance(58)
    clocked_worker.drain()
    assert runs == [0]
    clock.advance(10)
    clocked_worker.drain()
    assert runs == [0, 1]
    assert result.get(timeout=1) == 1


def test_default_retry_delay_is_the_retry_countdown(
    clocked_app: Celeriac, clocked_worker: Worker, clock: FakeClock
) -> None:
    runs: list[int] = []

    @clocked_app.task(bind=True, default_retry_delay=20)
    def later(self: Task[Any, Any]) -> None:
        runs.append(self.request.retries)
        if not self.request.retries:
            raise self.retry()

    later.delay()
    clocked_worker.drain()
    clock.advance(18)
    clocked_worker.drain()
    assert runs == [0]
    clock.advance(10)
    clocked_worker.drain()
    assert runs == [0, 1]


def test_retry_countdown_is_measured_on_the_broker_clock(
    clocked_app: Celeriac, clocked_worker: Worker, clock: FakeClock
) -> None:
    runs: list[int] = []

    @clocked_app.task(bind=True)
    def later(self: Task[Any, Any]) -> None:
        runs.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(countdown=60)

    later.delay()
    clocked_worker.drain()
    clock.advance(61)
    clocked_worker.drain()
    assert runs == [0, 1]
    clock.advance(30)
    clocked_worker.drain()
    assert runs == [0, 1]


def test_retry_with_new_arguments(app: Celeriac, worker: Worker) -> None:
    calls: list[tuple[int, str]] = []

    @app.task(bind=True)
    def step(self: Task[Any, Any], n: int, *, label: str) -> str:
        calls.append((n, label))
        if n > 0:
            raise self.retry(args=(n - 1,), kwargs={"label": f"{label}+"}, countdown=0)
        return label

    result = step.delay(2, label="x")
    worker.drain()
    assert result.get(timeout=1) == "x++"
    assert calls == [(2, "x"), (1, "x+"), (0, "x++")]
    assert result.retries == 2


def test_retry_to_another_queue(app: Celeriac, worker: Worker) -> None:
    @app.task(bind=True)
    def move(self: Task[Any, Any]) -> str:
        if not self.request.retries:
            raise self.retry(countdown=0, queue="other")
        return str(self.request.delivery_info["queue"])

    result = move.delay()
    worker.drain()
    assert result.state == states.RETRY
    from celeriac.testing import in_process_worker

    in_process_worker(app, queues=("other",)).drain()
    assert result.get(timeout=1) == "other"


def test_autoretry_for_with_retry_kwargs(app: Celeriac, worker: Worker) -> None:
    runs: list[int] = []

    @app.task(
        bind=True,
        autoretry_for=(ConnectionError,),
        retry_kwargs={"max_retries": 2, "countdown": 0},
    )
    def fetch(self: Task[Any, Any]) -> None:
        runs.append(self.request.retries)
        raise ConnectionError("refused")

    result = fetch.delay()
    worker.drain()
    assert runs == [0, 1, 2]
    assert result.retries == 2
    with pytest.raises(ConnectionError, match="refused"):
        result.get(timeout=1)


def test_autoretry_for_eventually_succeeds(app: Celeriac, worker: Worker) -> None:
    @app.task(bind=True, autoretry_for=(OSError,), default_retry_delay=0)
    def fetch(self: Task[Any, Any]) -> int:
        if self.request.retries < 2:
            raise ConnectionError("refused")  # a subclass of OSError
        return self.request.retries

    result = fetch.delay()
    worker.drain()
    assert result.get(timeout=1) == 2


def test_exceptions_outside_autoretry_for_fail_at_once(app: Celeriac, worker: Worker) -> None:
    runs: list[str] = []

    @app.task(
        autoretry_for=(OSError,),
        dont_autoretry_for=(FileNotFoundError,),
        default_retry_delay=0,
    )
    def fail(kind: str) -> None:
        runs.append(kind)
        raise ValueError(kind) if kind == "value" else FileNotFoundError(kind)

    value = fail.delay("value")
    missing = fail.delay("missing")
    worker.drain()
    assert runs == ["value", "missing"]
    assert (value.retries, missing.retries) == (0, 0)
    with pytest.raises(ValueError):
        value.get(timeout=1)
    with pytest.raises(FileNotFoundError):
        missing.get(timeout=1)


def test_backoff_grows_and_is_capped() -> None:
    delays = [backoff_delay(1, n, 600, jitter=False) for n in range(12)]
    assert delays[:6] == [1, 2, 4, 8, 16, 32]
    assert delays == sorted(delays)
    assert max(delays) == 600
    assert delays[-1] == 600
    assert [backoff_delay(3, n, 20, jitter=False) for n in range(4)] == [3, 6, 12, 20]


def test_backoff_jitter_stays_within_the_delay() -> None:
    for retries in range(12):
        cap = min(600, 2**retries)
        values = [backoff_delay(1, retries, 600, jitter=True) for _ in range(50)]
        assert all(0 <= v <= cap for v in values)
    assert len({backoff_delay(1, 9, 600, jitter=True) for _ in range(20)}) > 1


def test_autoretry_with_backoff_waits_the_backoff(
    clocked_app: Celeriac, clocked_worker: Worker, clock: FakeClock
) -> None:
    runs: list[int] = []

    @clocked_app.task(
        bind=True,
        autoretry_for=(ConnectionError,),
        retry_backoff=10,
        retry_jitter=False,
    )
    def fetch(self: Task[Any, Any]) -> int:
        runs.append(self.request.retries)
        if not self.request.retries:
            raise ConnectionError("refused")
        return 1

    result = fetch.delay()
    clocked_worker.drain()
    clock.advance(8)
    clocked_worker.drain()
    assert runs == [0]
    clock.advance(10)
    clocked_worker.drain()
    assert runs == [0, 1]
    assert result.get(timeout=1) == 1


def test_reject_without_requeue_dead_letters_and_records_failure(
    app: Celeriac, worker: Worker
) -> None:
    runs: list[int] = []

    @app.task
    def refuse(n: int) -> None:
        runs.append(n)
        raise Reject("not today", requeue=False)

    result = refuse.delay(7)
    worker.drain()
    assert runs == [7]
    assert result.state == states.FAILURE
    letters = app.broker.dead_letters()
    assert len(letters) == 1
    assert "Reject" in letters[0].reason
    assert "not today" in letters[0].reason
    assert letters[0].queue == "celeriac"
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    with pytest.raises(Reject):
        result.get(timeout=1)


def test_reject_with_requeue_runs_again(app: Celeriac, worker: Worker) -> None:
    attempts: list[int] = []

    @app.task(bind=True)
    def shy(self: Task[Any, Any]) -> int:
        attempts.append(self.request.delivery_info["attempt"])
        if len(attempts) < 3:
            raise Reject("later", requeue=True)
        return len(attempts)

    result = shy.delay()
    worker.drain()
    assert result.get(timeout=1) == 3
    assert attempts == [1, 2, 3]
    assert result.retries == 0
    assert app.broker.dead_letters() == []


def test_ignore_leaves_no_state_and_acks(app: Celeriac, worker: Worker) -> None:
    runs: list[int] = []

    @app.task
    def skip(n: int) -> None:
        runs.append(n)
        raise Ignore()

    result = skip.delay(1)
    assert worker.drain() == 1
    assert runs == [1]
    assert result.state == states.PENDING
    assert app.backend.get(result.id) is None
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    assert app.broker.dead_letters() == []


def test_a_task_acknowledged_before_it_runs_still_retries(app: Celeriac, worker: Worker) -> None:
    @app.task(bind=True, acks_late=False, max_retries=2, default_retry_delay=0)
    def early(self: Task[Any, Any]) -> int:
        if self.request.retries < 2:
            raise self.retry(exc=ConnectionError("network down"))
        return self.request.retries

    result = early.delay()
    for _ in range(3):  # each retry is a new message, run by the next drain
        worker.drain()
    assert result.get(timeout=1) == 2
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


@pytest.mark.parametrize(
    "options",
    [
        {"countdown": float("inf")},
        {"countdown": -1},
        {"priority": 12},
        {"priority": "high"},
        {"queue": ""},
    ],
)
def test_a_retry_that_cannot_go_in_a_message_fails_the_task_that_asked(
    app: Celeriac, worker: Worker, options: dict[str, Any]
) -> None:
    @app.task(bind=True)
    def bad_retry(self: Task[Any, Any]) -> None:
        raise self.retry(**options)

    result = bad_retry.delay()
    worker.drain()
    with pytest.raises(ConfigurationError, match="a retry's"):
        result.get(timeout=1)
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


def test_a_countdown_that_is_not_finite_is_refused_when_sending(app: Celeriac) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ConfigurationError, match="countdown"):
        add.apply_async((1, 1), countdown=float("nan"))
    with pytest.raises(ConfigurationError, match="eta"):
        add.apply_async((1, 1), eta=float("inf"))
