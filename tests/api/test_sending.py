"""Sending task calls: delay, apply_async and its options, routing, send_task, eager mode."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

import pytest

from celeriac import (
    AsyncResult,
    Celeriac,
    ConfigurationError,
    EagerResult,
    Task,
    TaskRevokedError,
    states,
)
from celeriac.testing import in_process_worker
from celeriac.worker import Worker
from support.clock import FakeClock

UTC = datetime.UTC


def queued(app: Celeriac, *queues: str) -> dict[str, int]:
    return app.broker.queue_lengths(list(queues))


# -- delay and apply_async -------------------------------------------------------------------


def test_delay_returns_an_async_result_and_sends_one_message(app: Celeriac, worker: Worker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 2)
    assert type(result) is AsyncResult
    assert result.state == states.PENDING
    assert queued(app, "celeriac") == {"celeriac": 1}
    assert worker.drain() == 1
    assert result.get(timeout=1) == 4
    assert queued(app, "celeriac") == {"celeriac": 0}


def test_countdown_waits_in_the_broker_until_its_time(
    clocked_app: Celeriac, clocked_worker: Worker, clock: FakeClock
) -> None:
    ran: list[int] = []

    @clocked_app.task
    def note(n: int) -> int:
        ran.append(n)
        return n

    later = note.apply_async((1,), countdown=30)
    later_td = note.apply_async((2,), countdown=datetime.timedelta(seconds=30))
    now = note.delay(3)
    clocked_worker.drain()
    assert ran == [3]
    assert later.state == states.PENDING
    clock.advance(29)
    clocked_worker.drain()
    assert ran == [3]
    clock.advance(10)
    clocked_worker.drain()
    assert sorted(ran) == [1, 2, 3]
    assert (later.get(timeout=1), later_td.get(timeout=1), now.get(timeout=1)) == (1, 2, 3)


def test_eta_waits_in_the_broker_until_its_time(
    clocked_app: Celeriac, clocked_worker: Worker, clock: FakeClock
) -> None:
    ran: list[str] = []

    @clocked_app.task
    def note(tag: str) -> str:
        ran.append(tag)
        return tag

    eta = datetime.datetime.fromtimestamp(clock.now, tz=UTC) + datetime.timedelta(minutes=5)
    result = note.apply_async(("eta",), eta=eta)
    clocked_worker.drain()
    clock.advance(299)
    clocked_worker.drain()
    assert ran == []
    assert result.state == states.PENDING
    clock.advance(3)
    clocked_worker.drain()
    assert ran == ["eta"]
    assert result.get(timeout=1) == "eta"


@pytest.mark.parametrize(
    "expires",
    [-1, datetime.timedelta(seconds=-5), datetime.datetime(2000, 1, 1, tzinfo=UTC)],
    ids=["seconds", "timedelta", "datetime"],
)
def test_expires_in_the_past_revokes_without_running(
    app: Celeriac, worker: Worker, expires: Any
) -> None:
    ran: list[int] = []

    @app.task
    def note(n: int) -> int:
        ran.append(n)
        return n

    result = note.apply_async((1,), expires=expires)
    fine = note.apply_async((2,), expires=3600)
    worker.drain()
    assert ran == [2]
    assert result.state == states.REVOKED
    with pytest.raises(TaskRevokedError):
        result.get(timeout=1)
    assert fine.get(timeout=1) == 2
    assert queued(app, "celeriac") == {"celeriac": 0}


def test_queue_option_goes_to_that_queue_only(app: Celeriac, worker: Worker) -> None:
    @app.task
    def where(x: int) -> int:
        return x

    result = where.apply_async((1,), queue="other")
    worker.drain()
    assert result.state == states.PENDING
    assert queued(app, "celeriac", "other") == {"celeriac": 0, "other": 1}
    other = in_process_worker(app, queues=("other",))
    assert other.drain() == 1
    assert result.get(timeout=1) == 1


def test_higher_priority_runs_first(app: Celeriac, worker: Worker) -> None:
    order: list[str] = []

    @app.task
    def note(tag: str) -> None:
        order.append(tag)

    note.apply_async(("low",), priority=0)
    note.apply_async(("default",))
    note.apply_async(("high",), priority=9)
    note.apply_async(("middle",), priority=5)
    worker.drain()
    assert order == ["high", "middle", "low", "default"]


def test_task_id_is_honoured(app: Celeriac, worker: Worker) -> None:
    @app.task(bind=True)
    def me(self: Task[Any, Any]) -> str | None:
        return self.request.id

    result = me.apply_async(task_id="my-own-id")
    assert result.id == "my-own-id"
    worker.drain()
    assert app.AsyncResult("my-own-id").get(timeout=1) == "my-own-id"


def test_headers_reach_the_request(app: Celeriac, worker: Worker) -> None:
    @app.task(bind=True)
    def headers(self: Task[Any, Any]) -> dict[str, Any]:
        return self.request.headers

    result = headers.apply_async(headers={"tenant": "acme", "n": 3})
    worker.drain()
    assert result.get(timeout=1) == {"tenant": "acme", "n": 3}


def test_unknown_send_option_is_an_error_that_names_it(app: Celeriac) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ConfigurationError, match="contdown"):
        add.apply_async((1, 2), contdown=5)
    with pytest.raises(ConfigurationError, match="bogus"):
        app.send_task("anything", bogus=True)
    assert queued(app, "celeriac") == {"celeriac": 0}


@pytest.mark.parametrize("priority", [-1, 10, 255, 1.5, "5", True])
def test_priority_outside_0_to_9_is_an_error(app: Celeriac, priority: Any) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ConfigurationError, match="priority"):
        add.apply_async((1, 2), priority=priority)
    assert queued(app, "celeriac") == {"celeriac": 0}


def test_a_task_priority_attribute_outside_0_to_9_fails_when_sent(app: Celeriac) -> None:
    @app.task(priority=12)
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ConfigurationError, match="priority"):
        add.delay(1, 2)


# -- routing -------------------------------------------------------------------------------------

QUEUES = ("celeriac", "maths", "bulk", "routed", "own", "explicit", "fallback")


def landed(app: Celeriac) -> str:
    """The one queue that holds a message."""
    full = [q for q, n in queued(app, *QUEUES).items() if n]
    assert len(full) == 1, full
    return full[0]


def make_tasks(app: Celeriac) -> tuple[Task[[int], int], Task[[int], int]]:
    @app.task(name="jobs.add")
    def add(x: int) -> int:
        return x

    @app.task(name="other.mul")
    def mul(x: int) -> int:
        return x

    return add, mul


def test_routes_dict_by_name(app: Celeriac) -> None:
    app.conf.task_routes = {"jobs.add": {"queue": "maths"}}
    add, mul = make_tasks(app)
    add.delay(1)
    assert landed(app) == "maths"
    app.broker.purge(list(QUEUES))
    mul.delay(1)
    assert landed(app) == "celeriac"


def test_routes_dict_with_glob_and_queue_name(app: Celeriac) -> None:
    app.conf.task_routes = {"jobs.*": "bulk"}
    add, mul = make_tasks(app)
    add.delay(1)
    assert landed(app) == "bulk"
    app.broker.purge(list(QUEUES))
    mul.delay(1)
    assert landed(app) == "celeriac"


def test_routes_function(app: Celeriac) -> None:
    calls: list[tuple[Any, ...]] = []

    def route(
        name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any
    ) -> dict[str, str] | None:
        calls.append((name, args, kwargs))
        return {"queue": "routed"} if args[0] > 10 else None

    app.conf.task_routes = route
    add, _ = make_tasks(app)
    add.delay(11)
    assert landed(app) == "routed"
    app.broker.purge(list(QUEUES))
    add.delay(1)
    assert landed(app) == "celeriac"
    assert calls == [("jobs.add", (11,), {}), ("jobs.add", (1,), {})]


def test_routes_list_is_tried_in_order(app: Celeriac) -> None:
    def route(name: str, *rest: Any, **kw: Any) -> str | None:
        return "routed" if name.startswith("other.") else None

    app.conf.task_routes = [{"jobs.add": "maths"}, route, {"*": "bulk"}]
    add, mul = make_tasks(app)
    add.delay(1)
    assert landed(app) == "maths"
    app.broker.purge(list(QUEUES))
    mul.delay(1)
    assert landed(app) == "routed"
    app.broker.purge(list(QUEUES))
    app.send_task("third.thing")
    assert landed(app) == "bulk"


def test_routes_as_ordered_pattern_pairs_with_a_regex(app: Celeriac) -> None:
    # Celery's documented form for ordered matching: a list of (pattern, route) pairs.
    app.conf.task_routes = (
        [
            ("jobs.*", {"queue": "bulk"}),
            (re.compile(r"(other|third)\."), {"queue": "routed"}),
            ("*", {"queue": "maths"}),
        ],
    )
    app.check()
    add, mul = make_tasks(app)
    sends: list[tuple[Callable[[], object], str]] = [
        (lambda: add.delay(1), "bulk"),
        (lambda: mul.delay(1), "routed"),
        (lambda: app.send_task("third.thing"), "routed"),
        (lambda: app.send_task("fourth.thing"), "maths"),
    ]
    for send, expected in sends:
        send()
        assert landed(app) == expected
        app.broker.purge(list(QUEUES))


def test_routes_dict_with_a_regex_key(app: Celeriac) -> None:
    app.conf.task_routes = {re.compile(r"other\.(mul|div)"): {"queue": "routed"}}
    add, mul = make_tasks(app)
    mul.delay(1)
    assert landed(app) == "routed"
    app.broker.purge(list(QUEUES))
    add.delay(1)
    assert landed(app) == "celeriac"


@pytest.mark.parametrize("routes", [[42], ([("a", "b", "c")],), "jobs"])
def test_routes_that_are_not_routes_fail_at_check(app: Celeriac, routes: Any) -> None:
    app.conf.task_routes = routes
    with pytest.raises(ConfigurationError, match="task_routes"):
        app.check()


def test_queue_precedence_option_over_task_over_route_over_default(app: Celeriac) -> None:
    app.conf.task_default_queue = "fallback"
    app.conf.task_routes = {"routed.*": "routed"}

    @app.task(name="plain.task")
    def plain() -> None: ...

    @app.task(name="routed.task")
    def routed() -> None: ...

    @app.task(name="routed.own", queue="own")
    def own() -> None: ...

    cases: list[tuple[Callable[[], Any], str]] = [
        (plain.delay, "fallback"),
        (routed.delay, "routed"),
        (own.delay, "own"),
        (lambda: own.apply_async(queue="explicit"), "explicit"),
        (lambda: routed.apply_async(queue="explicit"), "explicit"),
    ]
    for send, expected in cases:
        send()
        assert landed(app) == expected
        app.broker.purge(list(QUEUES))


def test_default_worker_consumes_task_default_queue(app: Celeriac) -> None:
    app.conf.task_default_queue = "fallback"

    @app.task
    def one() -> int:
        return 1

    result = one.delay()
    in_process_worker(app).drain()
    assert result.get(timeout=1) == 1


# -- send_task -------------------------------------------------------------------------------------


def test_send_task_by_name_registered_only_on_the_worker(
    make_app: Callable[..., Celeriac],
) -> None:
    client, server = make_app(), make_app()

    @server.task(name="remote.add")
    def add(x: int, y: int) -> int:
        return x + y

    assert "remote.add" not in client.tasks
    result = client.send_task("remote.add", (2, 3))
    kw_result = client.send_task("remote.add", kwargs={"x": 1, "y": 1})
    in_process_worker(server).drain()
    assert result.get(timeout=1) == 5
    assert kw_result.get(timeout=1) == 2
    assert result.name == "remote.add"


def test_send_task_checks_arguments_of_a_task_registered_here(app: Celeriac) -> None:
    @app.task(name="local.add")
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError):
        app.send_task("local.add", (1, 2, 3))
    assert queued(app, "celeriac") == {"celeriac": 0}


def test_arguments_that_do_not_serialize_fail_in_the_caller(app: Celeriac) -> None:
    @app.task
    def take(x: Any) -> None: ...

    with pytest.raises(TypeError, match="serialized"):
        take.delay(object())
    assert queued(app, "celeriac") == {"celeriac": 0}


# -- lineage ---------------------------------------------------------------------------------


def test_calls_from_inside_a_task_get_parent_and_root_ids(app: Celeriac, worker: Worker) -> None:
    seen: dict[str, tuple[str | None, str | None]] = {}

    @app.task(bind=True)
    def grandchild(self: Task[Any, Any]) -> None:
        seen["grandchild"] = (self.request.parent_id, self.request.root_id)

    @app.task(bind=True)
    def child(self: Task[Any, Any]) -> str:
        seen["child"] = (self.request.parent_id, self.request.root_id)
        return grandchild.delay().id

    @app.task(bind=True)
    def parent(self: Task[Any, Any]) -> str:
        seen["parent"] = (self.request.parent_id, self.request.root_id)
        return child.delay().id

    root = parent.delay()
    worker.drain()
    child_id = root.get(timeout=1)
    assert app.AsyncResult(child_id).get(timeout=1)
    assert seen == {
        "parent": (None, None),
        "child": (root.id, root.id),
        "grandchild": (child_id, root.id),
    }


def test_calls_from_a_task_called_directly_have_no_parent(app: Celeriac, worker: Worker) -> None:
    seen: list[tuple[str | None, str | None]] = []

    @app.task(bind=True)
    def child(self: Task[Any, Any]) -> None:
        seen.append((self.request.parent_id, self.request.root_id))

    @app.task
    def parent() -> None:
        child.delay()

    parent()
    worker.drain()
    assert seen == [(None, None)]


# -- eager mode and apply() -----------------------------------------------------------------------


def test_always_eager_runs_delay_at_once(app: Celeriac, worker: Worker) -> None:
    app.conf.task_always_eager = True
    ran: list[int] = []

    @app.task
    def add(x: int, y: int) -> int:
        ran.append(x)
        return x + y

    result = add.delay(2, 3)
    assert isinstance(result, EagerResult)
    assert ran == [2]
    assert result.state == states.SUCCESS
    assert result.get() == 5
    assert queued(app, "celeriac") == {"celeriac": 0}
    assert worker.drain() == 0


def test_always_eager_failure_is_kept_in_the_result(app: Celeriac) -> None:
    app.conf.task_always_eager = True

    @app.task
    def boom() -> None:
        raise ValueError("eager boom")

    result = boom.delay()
    assert result.failed()
    assert isinstance(result.result, ValueError)
    with pytest.raises(ValueError, match="eager boom"):
        result.get()


def test_eager_propagates_raises_in_the_caller(app: Celeriac) -> None:
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True

    @app.task
    def boom() -> None:
        raise ValueError("propagated")

    with pytest.raises(ValueError, match="propagated"):
        boom.delay()
    with pytest.raises(ValueError, match="propagated"):
        boom.apply()


def test_apply_throw_raises_without_the_setting(app: Celeriac) -> None:
    @app.task
    def boom() -> None:
        raise KeyError("thrown")

    assert boom.apply().failed()
    with pytest.raises(KeyError, match="thrown"):
        boom.apply(throw=True)
    app.conf.task_eager_propagates = True
    assert boom.apply(throw=False).failed()


def test_apply_runs_here_with_retries_and_no_sleeping(app: Celeriac, worker: Worker) -> None:
    attempts: list[int] = []

    @app.task(bind=True, max_retries=5, default_retry_delay=3600)
    def flaky(self: Task[Any, Any], fail_times: int) -> int:
        attempts.append(self.request.retries)
        assert self.request.is_eager
        try:
            if self.request.retries < fail_times:
                raise ConnectionError("down")
        except ConnectionError as exc:
            raise self.retry(exc=exc, countdown=3600) from exc
        return self.request.retries

    result = flaky.apply((3,))
    assert isinstance(result, EagerResult)
    assert result.get() == 3
    assert result.retries == 3
    assert attempts == [0, 1, 2, 3]
    assert queued(app, "celeriac") == {"celeriac": 0}
    assert worker.drain() == 0


def test_apply_gives_up_after_max_retries(app: Celeriac) -> None:
    @app.task(bind=True, max_retries=2)
    def hopeless(self: Task[Any, Any]) -> None:
        raise self.retry(exc=ConnectionError("still down"), countdown=60)

    result = hopeless.apply()
    assert result.state == states.FAILURE
    assert result.retries == 2
    with pytest.raises(ConnectionError, match="still down"):
        result.get()


def test_apply_with_retry_args_uses_the_new_arguments(app: Celeriac) -> None:
    @app.task(bind=True)
    def countdown(self: Task[Any, Any], n: int) -> int:
        if n > 0:
            raise self.retry(args=(n - 1,), countdown=60)
        return self.request.retries

    assert countdown.apply((3,)).get() == 3


def test_countdown_is_measured_on_the_broker_clock(
    clocked_app: Celeriac, clocked_worker: Worker, clock: FakeClock
) -> None:
    ran: list[int] = []

    @clocked_app.task
    def note(n: int) -> int:
        ran.append(n)
        return n

    clock.advance(3600)
    note.apply_async((1,), countdown=60)
    clocked_worker.drain()
    assert ran == []
    clock.advance(61)
    clocked_worker.drain()
    assert ran == [1]


def test_expiry_is_judged_on_the_broker_clock(
    clocked_app: Celeriac, clocked_worker: Worker, clock: FakeClock
) -> None:
    ran: list[int] = []

    @clocked_app.task
    def note(n: int) -> int:
        ran.append(n)
        return n

    result = note.apply_async((1,), countdown=10, expires=60)
    clock.advance(120)
    clocked_worker.drain()
    assert ran == []
    assert result.state == states.REVOKED
