"""Reading results: ``AsyncResult`` states, values, failures, timeouts, forget and revoke."""

from __future__ import annotations

import builtins
import datetime
from typing import Any

import pytest

import celeriac
from celeriac import AsyncResult, Celeriac, Task, TaskRevokedError, states
from celeriac.worker import Worker


class InventoryError(Exception):
    """A user's own exception type, defined at module level so the client can import it."""

    def __init__(self, sku: str, missing: int) -> None:
        super().__init__(sku, missing)
        self.sku = sku
        self.missing = missing


def test_get_returns_the_value_and_state_goes_pending_to_success(
    app: Celeriac, worker: Worker
) -> None:
    @app.task
    def add(x: int, y: int) -> dict[str, Any]:
        return {"sum": x + y, "items": [x, y]}

    result = add.delay(2, 3)
    assert result.state == result.status == states.PENDING
    assert not result.ready()
    assert not result.successful()
    assert not result.failed()
    assert result.result is None
    assert result.date_done is None
    worker.drain()
    assert result.state == states.SUCCESS
    assert result.ready() and result.successful() and not result.failed()
    assert result.get(timeout=1) == {"sum": 5, "items": [2, 3]}
    assert result.result == result.info == {"sum": 5, "items": [2, 3]}
    assert result.name == add.name
    assert result.worker == "celeriac@test"
    assert result.task_id == result.id


def test_date_done_is_timezone_aware(app: Celeriac, worker: Worker) -> None:
    @app.task
    def one() -> int:
        return 1

    before = datetime.datetime.now(datetime.UTC)
    result = one.delay()
    worker.drain()
    done = result.date_done
    assert isinstance(done, datetime.datetime)
    assert done.tzinfo is not None
    assert done.utcoffset() == datetime.timedelta(0)
    assert before - datetime.timedelta(seconds=1) <= done
    assert done <= datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)


def test_get_times_out_when_nobody_runs_the_task(app: Celeriac) -> None:
    @app.task
    def one() -> int:
        return 1

    result = one.delay()
    with pytest.raises(celeriac.TimeoutError) as raised:
        result.get(timeout=0.1)
    assert isinstance(raised.value, builtins.TimeoutError)
    with pytest.raises(builtins.TimeoutError):
        app.AsyncResult("never-sent").get(timeout=0)
    assert result.state == states.PENDING


def test_failure_reraises_a_builtin_exception_with_remote_traceback(
    app: Celeriac, worker: Worker
) -> None:
    @app.task
    def fails(key: str) -> None:
        raise KeyError(key)

    result = fails.delay("no such thing")
    worker.drain()
    assert result.state == states.FAILURE
    assert result.failed() and result.ready() and not result.successful()
    with pytest.raises(KeyError) as raised:
        result.get(timeout=1)
    assert raised.value.args == ("no such thing",)
    traceback = result.traceback
    assert traceback is not None
    assert "raise KeyError(key)" in traceback
    notes = "\n".join(getattr(raised.value, "__notes__", []))
    assert "Remote traceback" in notes
    assert "raise KeyError(key)" in notes
    assert result.id in notes


def test_failure_reraises_a_custom_exception(app: Celeriac, worker: Worker) -> None:
    @app.task
    def reserve(sku: str, count: int) -> None:
        raise InventoryError(sku, count)

    result = reserve.delay("ABC-1", 4)
    worker.drain()
    with pytest.raises(InventoryError) as raised:
        result.get(timeout=1)
    assert (raised.value.sku, raised.value.missing) == ("ABC-1", 4)
    assert "raise InventoryError(sku, count)" in (result.traceback or "")
    assert any("InventoryError" in note for note in raised.value.__notes__)


def test_get_without_propagate_returns_the_exception(app: Celeriac, worker: Worker) -> None:
    @app.task
    def fails() -> None:
        raise ValueError("bad value")

    result = fails.delay()
    worker.drain()
    value = result.get(timeout=1, propagate=False)
    assert isinstance(value, ValueError)
    assert value.args == ("bad value",)
    assert isinstance(result.result, ValueError)
    assert isinstance(result.info, ValueError)


def test_unimportable_exception_type_comes_back_as_task_error(
    app: Celeriac, worker: Worker
) -> None:
    class LocalError(Exception):
        pass

    @app.task
    def fails() -> None:
        raise LocalError("local only")

    result = fails.delay()
    worker.drain()
    with pytest.raises(celeriac.TaskError, match="local only") as raised:
        result.get(timeout=1)
    assert "LocalError" in raised.value.exc_type


def test_forget_deletes_the_result(app: Celeriac, worker: Worker) -> None:
    @app.task
    def one() -> int:
        return 1

    result = one.delay()
    worker.drain()
    assert result.get(timeout=1) == 1
    result.forget()
    assert result.state == states.PENDING
    assert app.AsyncResult(result.id).state == states.PENDING
    assert app.backend.get(result.id) is None


def test_ignore_result_stores_nothing_but_acks(app: Celeriac, worker: Worker) -> None:
    ran: list[int] = []

    @app.task(ignore_result=True)
    def quiet(n: int) -> int:
        ran.append(n)
        return n

    @app.task
    def loud(n: int) -> int:
        return n

    result = quiet.delay(1)
    per_call = loud.apply_async((2,), ignore_result=True)
    assert worker.drain() == 2
    assert ran == [1]
    assert result.state == states.PENDING
    assert per_call.state == states.PENDING
    assert app.backend.get(result.id) is None
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    assert worker.drain() == 0


def test_task_ignore_result_setting(app: Celeriac, worker: Worker) -> None:
    app.conf.task_ignore_result = True

    @app.task
    def one() -> int:
        return 1

    result = one.delay()
    worker.drain()
    assert result.state == states.PENDING
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


@pytest.mark.parametrize("where", ["setting", "option"])
def test_track_started_stores_started(app: Celeriac, worker: Worker, where: str) -> None:
    seen: list[str] = []
    if where == "setting":
        app.conf.task_track_started = True
    options = {"track_started": True} if where == "option" else {}

    @app.task(bind=True, **options)
    def look(self: Task[Any, Any]) -> str:
        seen.append(AsyncResult(self.request.id or "", app=app).state)
        return "done"

    result = look.delay()
    worker.drain()
    assert seen == [states.STARTED]
    assert result.state == states.SUCCESS


def test_started_is_not_stored_by_default(app: Celeriac, worker: Worker) -> None:
    seen: list[str] = []

    @app.task(bind=True)
    def look(self: Task[Any, Any]) -> None:
        seen.append(app.AsyncResult(self.request.id or "").state)

    look.delay()
    worker.drain()
    assert seen == [states.PENDING]


def test_async_result_equality_and_hash_by_id(app: Celeriac) -> None:
    one: AsyncResult[Any] = AsyncResult("a", app=app)
    same: AsyncResult[Any] = AsyncResult("a", app=app)
    other: AsyncResult[Any] = AsyncResult("b", app=app)
    assert one == same
    assert hash(one) == hash(same)
    assert one != other
    assert one == "a"
    assert len({one, same, other}) == 2
    assert one.app is app
    assert repr(one) == "<AsyncResult: a>"


def test_revoke_before_a_worker_runs_it(app: Celeriac, worker: Worker) -> None:
    ran: list[int] = []

    @app.task
    def note(n: int) -> int:
        ran.append(n)
        return n

    doomed = note.delay(1)
    kept = note.delay(2)
    doomed.revoke()
    assert doomed.state == states.REVOKED
    assert doomed.ready() and not doomed.successful()
    worker.drain()
    assert ran == [2]
    assert doomed.state == states.REVOKED
    with pytest.raises(TaskRevokedError):
        doomed.get(timeout=1)
    assert isinstance(doomed.get(timeout=1, propagate=False), TaskRevokedError)
    assert kept.get(timeout=1) == 2
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


def test_revoke_reaches_a_worker_created_later(app: Celeriac) -> None:
    from celeriac.testing import in_process_worker

    ran: list[int] = []

    @app.task
    def note(n: int) -> int:
        ran.append(n)
        return n

    doomed = note.delay(1)
    app.control.revoke([doomed.id])
    in_process_worker(app).drain()
    assert ran == []
    assert doomed.state == states.REVOKED


def test_a_final_state_is_not_overwritten(app: Celeriac, worker: Worker) -> None:
    @app.task
    def one() -> int:
        return 1

    result = one.delay()
    worker.drain()
    result.revoke()
    assert app.AsyncResult(result.id).state == states.SUCCESS
    assert result.get(timeout=1) == 1
