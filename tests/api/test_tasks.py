"""Declaring tasks with ``@app.task`` and calling them, as a Celery user would."""

from __future__ import annotations

from typing import Any

import pytest

import celeriac
from celeriac import Celeriac, Celery, ConfigurationError, Task
from celeriac.worker import Worker


def plain(x: int, y: int) -> int:
    return x + y


def test_celery_is_celeriac() -> None:
    assert Celery is Celeriac
    assert celeriac.Celery is celeriac.Celeriac


def test_bare_decorator_registers_under_module_and_qualname(app: Celeriac) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert isinstance(add, Task)
    assert (
        add.name
        == f"{__name__}.test_bare_decorator_registers_under_module_and_qualname.<locals>.add"
    )
    assert app.tasks[add.name] is add
    assert app.get_task(add.name) is add


def test_module_level_function_name_is_module_dot_function(app: Celeriac) -> None:
    task = app.task(plain)
    assert task.name == f"{__name__}.plain"


def test_decorator_with_options_sets_them(app: Celeriac) -> None:
    @app.task(name="maths.add", max_retries=7, queue="maths", priority=4, ignore_result=True)
    def add(x: int, y: int) -> int:
        return x + y

    assert add.name == "maths.add"
    assert app.tasks["maths.add"] is add
    assert (add.max_retries, add.queue, add.priority, add.ignore_result) == (7, "maths", 4, True)


def test_name_option_overrides_the_default(app: Celeriac) -> None:
    @app.task(name="custom")
    def add(x: int, y: int) -> int:
        return x + y

    assert add.name == "custom"
    assert f"{__name__}.add" not in app.tasks


def test_unknown_task_option_is_named_in_the_error(app: Celeriac) -> None:
    with pytest.raises(ConfigurationError, match="max_retires"):

        @app.task(max_retires=3)
        def add(x: int, y: int) -> int:
            return x + y

    assert not app.tasks


def test_calling_the_task_runs_it_here(app: Celeriac, worker: Worker) -> None:
    calls: list[tuple[int, int]] = []

    @app.task
    def add(x: int, y: int) -> int:
        calls.append((x, y))
        return x + y

    assert add(2, 3) == 5
    assert calls == [(2, 3)]
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    assert worker.drain() == 0


def test_bound_task_called_directly_sees_itself(app: Celeriac) -> None:
    @app.task(bind=True)
    def who(self: Task[Any, Any], x: int) -> tuple[str, bool]:
        return self.name, self.request.called_directly

    assert who(1) == (who.name, True)


def test_bound_task_sees_its_request_in_a_worker(app: Celeriac, worker: Worker) -> None:
    seen: dict[str, Any] = {}

    @app.task(bind=True)
    def inspect(self: Task[Any, Any], x: int, *, y: int) -> int:
        request = self.request
        seen.update(
            id=request.id,
            task=request.task,
            retries=request.retries,
            args=request.args,
            kwargs=request.kwargs,
            queue=request.delivery_info["queue"],
            hostname=request.hostname,
            called_directly=request.called_directly,
            is_eager=request.is_eager,
        )
        return x + y

    result = inspect.apply_async((1,), {"y": 2}, task_id="the-id")
    worker.drain()
    assert result.get(timeout=1) == 3
    assert seen == {
        "id": "the-id",
        "task": inspect.name,
        "retries": 0,
        "args": [1],
        "kwargs": {"y": 2},
        "queue": "celeriac",
        "hostname": "celeriac@test",
        "called_directly": False,
        "is_eager": False,
    }


def test_too_many_arguments_fail_in_the_caller_before_sending(app: Celeriac) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError, match="too many positional arguments"):
        add.delay(1, 2, 3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="z"):
        add.apply_async((1, 2), {"z": 3})
    with pytest.raises(TypeError, match="missing a required argument"):
        add.delay(1)  # type: ignore[call-arg]
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


def test_argument_checking_counts_self_for_bound_tasks(app: Celeriac) -> None:
    @app.task(bind=True)
    def one(self: Task[Any, Any], x: int) -> int:
        return x

    one.delay(1)
    with pytest.raises(TypeError):
        one.delay(1, 2)  # type: ignore[call-arg]
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 1}


def test_typing_false_skips_the_argument_check(app: Celeriac, worker: Worker) -> None:
    @app.task(typing=False)
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(1, 2, 3)  # type: ignore[call-arg]
    worker.drain()
    assert result.failed()
    with pytest.raises(TypeError):
        result.get(timeout=1)


def test_task_runs_in_a_worker(app: Celeriac, worker: Worker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    results = [add.delay(i, i) for i in range(5)]
    assert worker.drain() == 5
    assert [r.get(timeout=1) for r in results] == [0, 2, 4, 6, 8]


def test_signature_shortcuts_send_the_call(app: Celeriac, worker: Worker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    partial = add.s(2)
    result = partial.delay(40)
    immutable = add.si(1, 1).delay(99)
    worker.drain()
    assert result.get(timeout=1) == 42
    assert immutable.get(timeout=1) == 2
    assert partial(1) == 3


def test_a_task_defined_in_main_is_named_after_the_app(app: Celeriac) -> None:
    # As Celery does, so that `python tasks.py` and a worker run with -A tasks agree on names.
    def add(x: int, y: int) -> int:
        return x + y

    add.__module__ = "__main__"
    named = Celeriac("tasks", broker=app.broker, backend=app.backend)
    assert named.task(add).name == f"tasks.{add.__qualname__}"
    assert Celeriac(None, broker=app.broker).task(add).name == f"__main__.{add.__qualname__}"


def test_a_task_called_directly_inside_a_task_gets_its_own_request(
    app: Celeriac, worker: Worker
) -> None:
    @app.task(bind=True)
    def inner(self: Task[Any, Any], x: int) -> list[Any]:
        request = self.request
        return [request.id, request.task, request.args, request.called_directly]

    @app.task(bind=True)
    def outer(self: Task[Any, Any], y: int) -> list[Any]:
        return [inner(y + 1), self.request.id, self.request.args]

    result = outer.delay(1)
    worker.drain()
    assert result.get(timeout=1) == [[None, inner.name, [2], True], result.id, [1]]


def test_a_retry_inside_a_directly_called_task_does_not_retry_the_caller(
    app: Celeriac, worker: Worker
) -> None:
    runs: list[int] = []

    @app.task(bind=True)
    def inner(self: Task[Any, Any]) -> None:
        raise self.retry(exc=ValueError("inner gave up"), countdown=0)

    @app.task(bind=True)
    def outer(self: Task[Any, Any]) -> None:
        runs.append(self.request.retries)
        inner()

    result = outer.delay()
    worker.drain()
    assert runs == [0]
    with pytest.raises(ValueError, match="inner gave up"):
        result.get(timeout=1)


def test_calls_sent_from_a_directly_called_task_descend_from_the_worker_task(
    app: Celeriac, worker: Worker
) -> None:
    seen: list[tuple[str | None, str | None]] = []

    @app.task(bind=True)
    def leaf(self: Task[Any, Any]) -> None:
        seen.append((self.request.parent_id, self.request.root_id))

    @app.task
    def helper() -> None:
        leaf.delay()

    @app.task
    def outer() -> None:
        helper()

    result = outer.delay()
    worker.drain()
    assert seen == [(result.id, result.id)]
