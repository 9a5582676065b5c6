"""What a running task can do, in this process (``apply()`` and a draining worker): custom
states, request fields, ``current_task``, ``replace``, abortable tasks, the task logger,
``ResultSet`` and ``allow_join_result``, and ``delay_on_commit``. The same behaviours run in
real worker subprocesses in ``tests/test_task_runtime_worker.py``."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from celeriac import AsyncResult, Celeriac, GroupResult, Task, chain, group, states
from celeriac.contrib.abortable import ABORTED, AbortableAsyncResult, AbortableTask
from celeriac.exceptions import ConfigurationError
from celeriac.result import (
    ResultSet,
    allow_join_result,
    assert_will_not_block,
    denied_join_result,
)
from celeriac.task import current_task, get_current_task
from celeriac.utils.log import TaskFormatter, get_logger, get_task_logger
from celeriac.worker import Worker


# -- update_state -------------------------------------------------------------------------------
def test_update_state_is_readable_while_the_task_runs(app: Celeriac, worker: Worker) -> None:
    seen: list[tuple[str, Any]] = []

    @app.task(bind=True)
    def work(self: Task[Any, Any]) -> str:
        self.update_state(state="PROGRESS", meta={"current": 1, "total": 2})
        mine: AsyncResult[Any] = AsyncResult(self.request.id or "", app)
        seen.append((mine.state, mine.info))
        return "done"

    result = work.delay()
    worker.drain()
    assert seen == [("PROGRESS", {"current": 1, "total": 2})]
    assert result.get() == "done"
    assert result.info == "done"


def test_update_state_in_apply_stores_the_state(app: Celeriac) -> None:
    @app.task(bind=True)
    def work(self: Task[Any, Any]) -> str:
        self.update_state(state="CHECKING", meta={"step": "a"})
        assert AsyncResult(self.request.id or "", app).info == {"step": "a"}
        return AsyncResult(self.request.id or "", app).state

    assert work.apply().get() == "CHECKING"


def test_a_failure_state_with_an_exception_or_celerys_dict(app: Celeriac) -> None:
    @app.task(bind=True)
    def work(self: Task[Any, Any], task_id: str, meta: Any) -> None:
        self.update_state(task_id=task_id, state=states.FAILURE, meta=meta)

    work.apply(("one", KeyError("missing")))
    work.apply(("two", {"exc_type": "ValueError", "exc_message": ["bad input"]}))
    work.apply(("three", "plain text"))
    assert isinstance(AsyncResult("one", app).info, KeyError)
    two = AsyncResult("two", app).info
    assert isinstance(two, ValueError) and two.args == ("bad input",)
    assert str(AsyncResult("three", app).info) == "plain text"


def test_update_state_needs_a_state_and_an_id(app: Celeriac) -> None:
    @app.task
    def work() -> None:
        pass

    with pytest.raises(ValueError, match="no task_id"):
        work.update_state(state="PROGRESS")
    with pytest.raises(ValueError, match="a state is required"):
        work.update_state(task_id="x")
    work.update_state(task_id="given", state="PROGRESS", meta=[1])
    assert AsyncResult("given", app).info == [1]


def test_a_final_state_from_update_state_wins_over_the_return_value(
    app: Celeriac, worker: Worker
) -> None:
    @app.task(bind=True)
    def work(self: Task[Any, Any]) -> str:
        self.update_state(state=states.SUCCESS, meta="early")
        return "late"

    result = work.delay()
    worker.drain()
    assert result.get() == "early"


def test_started_info_says_which_worker(app: Celeriac, worker: Worker) -> None:
    seen: list[Any] = []

    @app.task(bind=True, track_started=True)
    def work(self: Task[Any, Any]) -> None:
        seen.append(AsyncResult(self.request.id or "", app).info)

    work.delay()
    worker.drain()
    assert seen[0]["hostname"] == "celeriac@test" and isinstance(seen[0]["pid"], int)


# -- the request and current_task ---------------------------------------------------------------
def test_request_fields_in_a_worker(app: Celeriac, worker: Worker) -> None:
    seen: dict[str, Any] = {}

    @app.task(bind=True)
    def work(self: Task[Any, Any], x: int, y: int = 0) -> None:
        r = self.request
        seen.update(
            delivery_info=r.delivery_info,
            correlation_id=r.correlation_id,
            timelimit=r.timelimit,
            argsrepr=r.argsrepr,
            kwargsrepr=r.kwargsrepr,
            callbacks=r.callbacks,
            errbacks=r.errbacks,
            ignore_result=r.ignore_result,
            is_eager=r.is_eager,
        )

    @app.task
    def noop() -> None:
        pass

    callback = noop.si()
    result = work.apply_async((1,), {"y": 2}, priority=5, time_limit=30, link=callback)
    worker.drain()
    assert seen["delivery_info"] == {
        "exchange": "",
        "routing_key": "celeriac",
        "queue": "celeriac",
        "priority": 5,
        "redelivered": False,
        "attempt": 1,
    }
    assert seen["correlation_id"] == result.id
    assert seen["timelimit"] == (30, None)
    assert seen["argsrepr"] == "(1,)" and seen["kwargsrepr"] == "{'y': 2}"
    assert [c["task"] for c in seen["callbacks"]] == [noop.name]
    assert seen["errbacks"] is None and seen["ignore_result"] is False
    assert seen["is_eager"] is False


def test_request_in_apply_is_eager(app: Celeriac) -> None:
    @app.task(bind=True)
    def work(self: Task[Any, Any]) -> Any:
        return [self.request.is_eager, self.request.delivery_info]

    assert work.apply().get() == [True, {"is_eager": True}]


def test_current_task_is_falsy_outside_a_task_and_the_task_inside(
    app: Celeriac, worker: Worker
) -> None:
    assert not current_task
    assert current_task == None  # noqa: E711 (a proxy, as Celery's)
    assert get_current_task() is None
    with pytest.raises(AttributeError, match="no task is running"):
        _ = current_task.request
    seen: list[Any] = []

    @app.task
    def work() -> None:
        seen.append((bool(current_task), current_task.name, current_task.request.id))

    result = work.delay()
    worker.drain()
    work.apply(task_id="eager-id")
    work()
    assert seen == [
        (True, work.name, result.id),
        (True, work.name, "eager-id"),
        (True, work.name, None),
    ]


# -- replace ---------------------------------------------------------------------------------
def test_replace_in_a_worker_and_in_apply(app: Celeriac, worker: Worker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(bind=True)
    def swap(self: Task[Any, Any], x: int) -> None:
        raise self.replace(chain(add.s(x, 1), add.s(100)))

    result = chain(swap.s(1), add.s(1000)).apply_async()
    worker.drain()
    assert result.get() == 1102
    assert result.parent is not None and result.parent.get() == 102
    assert swap.apply((2,)).get() == 103
    with pytest.raises(RuntimeError, match="only a call run by a worker"):
        swap(3)


def test_replacing_with_a_group_when_links_follow_is_a_clear_error(
    app: Celeriac, worker: Worker
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(bind=True)
    def swap(self: Task[Any, Any]) -> None:
        raise self.replace(group(add.s(1, 1), add.s(2, 2)))

    alone = swap.delay()
    linked = swap.apply_async(link=add.s(1))
    worker.drain()
    assert alone.get() == [2, 4]
    with pytest.raises(ConfigurationError, match="not supported yet"):
        linked.get()


# -- abortable ------------------------------------------------------------------------------------
def test_an_abortable_task_sees_the_abort(app: Celeriac, worker: Worker) -> None:
    @app.task(bind=True, base=AbortableTask)
    def work(self: AbortableTask) -> bool:
        return self.is_aborted()

    result = work.delay()
    handle = AbortableAsyncResult(result.id, app)
    assert handle.abort() is True
    assert handle.state == ABORTED and handle.is_aborted()
    assert isinstance(work.AsyncResult(result.id), AbortableAsyncResult)
    worker.drain()
    assert result.get() is True
    assert handle.abort() is False and not handle.is_aborted()


# -- logging ---------------------------------------------------------------------------------
def test_task_logger_records_carry_the_task(
    app: Celeriac, caplog: pytest.LogCaptureFixture
) -> None:
    logger = get_task_logger("tests.runtime.tasks")
    assert get_task_logger("tests.runtime.tasks") is logger
    assert get_logger("tests.runtime.other").name == "tests.runtime.other"

    @app.task
    def work() -> None:
        logger.warning("inside")

    with caplog.at_level(logging.INFO):
        work.apply(task_id="abc")
        logger.warning("outside")
    fields = [(r.getMessage(), r.task_name, r.task_id) for r in caplog.records]  # type: ignore[attr-defined]
    assert fields == [("inside", work.name, "abc"), ("outside", "???", "???")]
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert TaskFormatter("%(task_name)s[%(task_id)s] %(message)s").format(plain) == "???[???] m"
    with pytest.raises(RuntimeError, match="reserved"):
        get_task_logger("celery.task")


# -- results --------------------------------------------------------------------------------------
def test_result_set(app: Celeriac, worker: Worker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def fail() -> None:
        raise KeyError("no")

    first, second = add.delay(1, 1), add.delay(2, 2)
    results = ResultSet([first])
    results.add(second)
    results.add(second)
    assert len(results) == 2 and list(results) == [first, second]
    assert not results.ready() and results.completed_count() == 0
    worker.drain()
    assert results.ready() and results.successful() and not results.failed()
    assert results.get(timeout=5) == [2, 4] and results.join() == [2, 4]
    assert results.completed_count() == 2
    failed = fail.delay()
    results.add(failed)
    worker.drain()
    assert results.failed() and not results.successful()
    with pytest.raises(KeyError):
        results.get()
    assert results.get(propagate=False)[:2] == [2, 4]
    results.discard(failed.id)
    results.discard("not-there")
    assert results.results == [first, second]
    with pytest.raises(KeyError):
        results.remove("not-there")
    assert issubclass(GroupResult, ResultSet)


def test_get_inside_a_worker_task_is_refused_unless_allowed(app: Celeriac, worker: Worker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    done = add.delay(1, 1)
    worker.drain()
    seen: list[Any] = []

    @app.task
    def waits() -> None:
        try:
            done.get()
        except RuntimeError as exc:
            seen.append(str(exc).splitlines()[0])
        with allow_join_result():
            seen.append(done.get())
        seen.append(done.get(disable_sync_subtasks=False))
        try:
            ResultSet([done]).get()
        except RuntimeError:
            seen.append("set refused")

    waits.delay()
    worker.drain()
    assert seen == ["Never call result.get() within a task!", 2, 2, "set refused"]
    waits.apply()  # apply() runs here, where waiting blocks nobody
    assert seen[4:] == [2, 2]  # no refusal: both waits returned


def test_join_guards_nest() -> None:
    assert_will_not_block()
    with denied_join_result():
        with pytest.raises(RuntimeError):
            assert_will_not_block()
        assert_will_not_block(disable_sync_subtasks=False)
        with allow_join_result():
            assert_will_not_block()
        with pytest.raises(RuntimeError):
            assert_will_not_block()


# -- delay_on_commit --------------------------------------------------------------------------
DJANGO_PROGRAM = textwrap.dedent(
    """
    import django
    from django.conf import settings
    from django.db import transaction

    settings.configure(DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                                              "NAME": ":memory:"}})
    django.setup()

    from celeriac import Celeriac
    from celeriac.testing import use_memory

    app = Celeriac("oncommit")
    with use_memory(app):
        @app.task
        def add(x, y):
            return x + y

        def queued():
            return app.broker.queue_lengths(["celeriac"])["celeriac"]

        with transaction.atomic():
            assert add.delay_on_commit(1, 2) is None
            assert add.apply_async_on_commit((3, 4), countdown=0) is None
            assert queued() == 0, "sent before the commit"
        assert queued() == 2, "not sent at the commit"
        try:
            with transaction.atomic():
                add.delay_on_commit(5, 6)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert queued() == 2, "sent although the transaction rolled back"
        add.delay_on_commit(7, 8)  # no transaction open: sent at once, as Django does
        assert queued() == 3
    print("ok")
    """
)


def test_delay_on_commit_waits_for_the_django_transaction() -> None:
    done = subprocess.run(
        [sys.executable, "-c", DJANGO_PROGRAM], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_delay_on_commit_without_django_says_so(
    app: Celeriac, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    monkeypatch.setitem(sys.modules, "django.db", None)
    with pytest.raises(ConfigurationError, match="need Django"):
        add.delay_on_commit(1, 2)
