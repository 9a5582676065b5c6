"""``beat_schedule`` entries, ``add_periodic_task`` through ``on_after_configure``, the signal,
and the message one fire becomes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from celeriac import Celeriac, ConfigurationError, crontab, schedule
from celeriac.beat import parse_entry
from celeriac.beat.entries import code_entries, fire_message
from celeriac.message import Message
from celeriac.periodic import APPLY_SCHEDULED
from celeriac.signals import Signal

from .conftest import AppFactory

DUE = dt.datetime(2024, 6, 1, 2, 0, tzinfo=dt.UTC)


def test_the_issues_example_parses(make_app: AppFactory) -> None:
    app = make_app(timezone="Asia/Shanghai")
    app.conf.beat_schedule = {
        "nightly-report": {
            "task": "tasks.report",
            "schedule": crontab(hour=2, minute=0),
            "args": (7,),
        },
        "every-30s": {"task": "tasks.ping", "schedule": 30.0},
    }
    entries = code_entries(app)
    assert entries["nightly-report"].task == "tasks.report"
    assert entries["nightly-report"].args == (7,)
    assert entries["nightly-report"].missed == "skip"
    assert entries["every-30s"].schedule == schedule(30)
    assert entries["nightly-report"].describe() == "tasks.report(7)"


def test_entry_keys_and_options() -> None:
    entry = parse_entry(
        "x",
        {
            "task": "tasks.ping",
            "schedule": 60,
            "relative": True,
            "kwargs": {"n": 1},
            "options": {"queue": "low", "priority": 3, "expires": 30},
            "missed": "run_once",
        },
    )
    assert entry.schedule == schedule(60, relative=True)
    assert entry.options == {"queue": "low", "priority": 3, "expires": 30}
    assert entry.missed == "run_once"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"task": "t", "schedule": 1, "arg": ()}, "beat_schedule['x']: unknown key(s) arg"),
        ({"schedule": 1}, "beat_schedule['x'] has no 'task'"),
        ({"task": "t"}, "beat_schedule['x'] has no 'schedule'"),
        ({"task": "t", "schedule": "soon"}, "['x']: cron expression 'soon' has 1 fields"),
        ({"task": "t", "schedule": [1]}, "beat_schedule['x']: [1] is not a schedule"),
        ({"task": "t", "schedule": 1, "missed": "all"}, "missed='all', choose from skip, run_once"),
        ({"task": "t", "schedule": 1, "options": {"eta": 1}}, "unknown option(s) eta"),
        ({"task": "t", "schedule": 1, "options": {"qeue": "a"}}, "unknown option(s) qeue"),
        ({"task": 42, "schedule": 1}, "42 is not a task name, a signature or a workflow"),
        ({"task": "t", "schedule": crontab}, "is not a schedule"),
    ],
)
def test_a_bad_entry_is_named_in_the_error(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_entry("x", spec)
    assert message in str(raised.value)


def test_a_bad_default_policy_is_an_error(make_app: AppFactory) -> None:
    app = make_app(beat_missed_policy="sometimes")
    with pytest.raises(ConfigurationError, match="beat_missed_policy='sometimes'"):
        code_entries(app)


def test_the_default_policy_comes_from_the_setting(make_app: AppFactory) -> None:
    app = make_app(beat_missed_policy="run_once")
    app.conf.beat_schedule = {"a": {"task": "t", "schedule": 5}}
    assert code_entries(app)["a"].missed == "run_once"


def test_item_assignment_in_one_app_does_not_leak_into_another(make_app: AppFactory) -> None:
    first, second = make_app(), make_app()
    first.conf.beat_schedule["only-here"] = {"task": "t", "schedule": 5}
    assert second.conf.beat_schedule == {}


# -- add_periodic_task and on_after_configure ------------------------------------------------------
def test_add_periodic_task_in_on_after_configure(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    def scan(a: int, b: int) -> int:
        return a + b

    seen: list[object] = []

    @app.on_after_configure.connect
    def setup(sender: Celeriac, **kwargs: Any) -> None:
        seen.append(sender)
        sender.add_periodic_task(
            crontab(minute="*/15", day_of_week="mon-fri"), scan.s(1, 2), name="scan"
        )
        sender.add_periodic_task(10.0, scan.s(3), args=(4,), queue="fast", missed="run_once")

    assert "scan" not in app.conf.beat_schedule  # nothing happens before start
    app.finalize()
    app.finalize()  # once only
    assert seen == [app]
    entries = code_entries(app)
    assert entries["scan"].task == scan.name
    assert entries["scan"].args == (1, 2)
    unnamed = entries[repr(scan.s(3))]
    assert unnamed.args == (4, 3)  # call arguments go first, as Celery's clone does
    assert unnamed.options == {"queue": "fast"}
    assert unnamed.missed == "run_once"
    assert APPLY_SCHEDULED in app.tasks


def test_add_periodic_task_checks_the_schedule(make_app: AppFactory) -> None:
    app = make_app()
    with pytest.raises(ConfigurationError, match="is not a schedule"):
        app.add_periodic_task(["daily"], "tasks.ping")
    with pytest.raises(ConfigurationError, match=r"\('tasks.ping'\): cron expression 'every day'"):
        app.add_periodic_task("every day", "tasks.ping")
    assert app.add_periodic_task(5, "tasks.ping") == "tasks.ping()"
    assert app.conf.beat_schedule["tasks.ping()"]["task"] == "tasks.ping"


def test_a_failing_receiver_stops_the_start() -> None:
    signal = Signal("test")

    @signal.connect
    def broken(sender: object, **kwargs: Any) -> None:
        raise RuntimeError("setup failed")

    with pytest.raises(RuntimeError, match="setup failed"):
        signal.send(sender=None)


def test_signal_connect_forms() -> None:
    signal, calls = Signal("test"), []
    mine, other = object(), object()

    def anyone(sender: object, **kwargs: Any) -> str:
        calls.append(("anyone", sender, kwargs.get("extra")))
        return "a"

    signal.connect(anyone)
    signal.connect(anyone)  # twice is once

    @signal.connect(sender=mine)
    def only_mine(sender: object, **kwargs: Any) -> None:
        calls.append(("mine", sender, None))

    assert signal.send(sender=other, extra=1) == [(anyone, "a")]
    signal.send(sender=mine)
    assert calls == [("anyone", other, 1), ("anyone", mine, None), ("mine", mine, None)]
    assert signal.disconnect(anyone) and not signal.disconnect(anyone)


# -- the message of a fire -------------------------------------------------------------------------
def test_a_fire_is_a_client_message_with_its_due_time(make_app: AppFactory) -> None:
    app = make_app()
    entry = parse_entry(
        "report",
        {"task": "tasks.report", "schedule": 60, "args": (7,), "options": {"expires": 30}},
    )
    message = fire_message(app, entry, DUE, "fire-id")
    assert isinstance(message, Message)
    assert (message.id, message.task, message.queue) == ("fire-id", "tasks.report", "celeriac")
    assert message.arguments(app.serializer) == ([7], {})
    assert message.headers == {"beat_entry": "report", "beat_due": DUE.timestamp()}
    assert message.expires == DUE.timestamp() + 30  # counted from the due time


def test_task_routes_and_task_options_apply_to_fires(make_app: AppFactory) -> None:
    app = make_app(task_routes={"tasks.*": {"queue": "routed"}})
    entry = parse_entry("r", {"task": "tasks.report", "schedule": 60, "options": {"priority": 5}})
    message = fire_message(app, entry, DUE, "id")
    assert (message.queue, message.priority) == ("routed", 5)


def test_a_plain_signature_fires_as_its_task(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    def report(days: int) -> int:
        return days

    entry = parse_entry("r", {"task": report.s(7).set(queue="reports"), "schedule": 60})
    assert (entry.task, entry.args, entry.workflow) == (report.name, (7,), None)
    assert entry.options == {"queue": "reports"}


class FakeWorkflow:
    """Anything with apply_async and to_dict can be scheduled, as a workflow is."""

    def to_dict(self) -> dict[str, Any]:
        return {"task": "celery.chain", "subtask_type": "chain", "kwargs": {"tasks": []}}

    def apply_async(self, **options: Any) -> None:
        raise AssertionError("beat never applies a workflow itself")


def test_a_workflow_fires_as_one_trigger_message(make_app: AppFactory) -> None:
    app = make_app()
    entry = parse_entry(
        "flow", {"task": FakeWorkflow(), "schedule": 60, "options": {"queue": "flows"}}
    )
    assert entry.task == APPLY_SCHEDULED
    assert entry.describe() == "workflow celery.chain"
    message = fire_message(app, entry, DUE, "id")
    assert (message.task, message.queue) == (APPLY_SCHEDULED, "flows")
    assert message.arguments(app.serializer) == (
        [FakeWorkflow().to_dict(), {"queue": "flows"}],
        {},
    )
    with pytest.raises(ConfigurationError, match="arguments in its signatures"):
        parse_entry("flow", {"task": FakeWorkflow(), "schedule": 60, "args": (1,)})


def test_a_signature_with_a_callback_fires_as_a_workflow(make_app: AppFactory) -> None:
    app = make_app()

    @app.task
    def step(x: int) -> int:
        return x

    linked = step.s(1).set(link=[step.s().to_dict()])
    entry = parse_entry("linked", {"task": linked, "schedule": 60})
    assert entry.task == APPLY_SCHEDULED
    assert isinstance(entry.workflow, dict) and entry.workflow["task"] == step.name
