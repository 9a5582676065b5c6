"""The scheduler on a fake clock: exactly-once fires from several beats, missed fires, pauses,
run-time entries, expiry, outages, and workers running what beat sent. No test sleeps."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

import celeriac
from celeriac import Celeriac, crontab
from celeriac.beat import ScheduleControl, Scheduler
from celeriac.canvas import chain, dag, group
from celeriac.exceptions import PublishError
from celeriac.message import Message
from celeriac.testing import in_process_worker
from support.clock import FakeClock

from .conftest import AppFactory

START = 1_717_200_000.0  # the fake clock's start: 2024-06-01 00:00:00 UTC


def sent(app: Celeriac, queue: str = "celeriac") -> list[Message]:
    """Take every message waiting in ``queue``, oldest first."""
    deliveries = app.broker.fetch([queue], 100_000, lease=3600, consumer="test", timeout=0)
    app.broker.ack_many(deliveries)
    return [Message.decode(d.body) for d in deliveries]


def dues(messages: list[Message]) -> list[float]:
    return [m.headers["beat_due"] for m in messages]


def run(schedulers: list[Scheduler], clock: FakeClock, seconds: float, step: float = 0.25) -> None:
    """Advance fake time by ``seconds``, ticking every scheduler (in a random order) every
    ``step`` seconds, the last time at the end."""
    rng = random.Random(len(schedulers))
    for _ in range(round(seconds / step)):
        clock.advance(step)
        for scheduler in rng.sample(schedulers, len(schedulers)):
            scheduler.tick()


def every_second(app: Celeriac, **entry: Any) -> Celeriac:
    app.conf.beat_schedule = {"tick": {"task": "timed.tick", "schedule": 1.0, **entry}}
    return app


# -- exactly once, from any number of beats --------------------------------------------------------
def test_three_beats_send_each_fire_once(make_app: AppFactory, clock: FakeClock) -> None:
    beats = [Scheduler(every_second(make_app()), clock=clock) for _ in range(3)]
    run(beats, clock, 60, step=0.125)
    fired = sent(beats[0].app)
    assert dues(fired) == [START + s for s in range(1, 61)]
    assert len({m.id for m in fired}) == 60


def test_when_a_beat_dies_the_others_keep_the_schedule(
    make_app: AppFactory, clock: FakeClock
) -> None:
    first, second = (Scheduler(every_second(make_app()), clock=clock) for _ in range(2))
    run([first, second], clock, 10)
    run([second], clock, 10)  # the first one is gone: nothing fails over, nothing is missed
    assert dues(sent(first.app)) == [START + s for s in range(1, 21)]


def test_tick_says_how_long_to_sleep(make_app: AppFactory, clock: FakeClock) -> None:
    app = make_app(beat_max_loop_interval=5.0)
    app.conf.beat_schedule = {"slow": {"task": "t", "schedule": 60.0}}
    scheduler = Scheduler(app, clock=clock)
    clock.advance(0.5)
    assert scheduler.tick() == pytest.approx(5.0)  # the next look at the stored schedule
    clock.advance(57.0)
    assert scheduler.tick() == pytest.approx(2.5)  # the next fire


def test_fires_carry_the_entrys_options(make_app: AppFactory, clock: FakeClock) -> None:
    app = every_second(make_app(), options={"queue": "timed", "priority": 7}, args=(1,))
    run([Scheduler(app, clock=clock)], clock, 2)
    first, second = sent(app, "timed")
    assert (first.priority, first.arguments(app.serializer)) == (7, ([1], {}))
    assert first.id != second.id


def test_crontab_fires_in_the_apps_time_zone(make_app: AppFactory, clock: FakeClock) -> None:
    app = make_app(timezone="Asia/Shanghai")
    app.conf.beat_schedule = {"nightly": {"task": "t", "schedule": crontab(hour=2, minute=0)}}
    run([Scheduler(app, clock=clock)], clock, 2 * 86400, step=600)
    when = [dt.datetime.fromtimestamp(d, dt.UTC) for d in dues(sent(app))]
    assert [str(w) for w in when] == ["2024-06-01 18:00:00+00:00", "2024-06-02 18:00:00+00:00"]


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2024-03-31", ["2024-03-31 03:00:00+02:00"]),  # 02:30 is skipped: once, at 03:00
        ("2024-10-27", ["2024-10-27 02:30:00+02:00"]),  # 02:30 comes twice: once
    ],
)
def test_a_clock_change_gives_one_fire(make_app: AppFactory, day: str, expected: list[str]) -> None:
    berlin = dt.datetime.fromisoformat(f"{day} 00:00").replace(tzinfo=celeriac_tz("Europe/Berlin"))
    clock = FakeClock(berlin.timestamp())
    app = make_app(timezone="Europe/Berlin")
    app.conf.beat_schedule = {"at-0230": {"task": "t", "schedule": crontab(hour=2, minute=30)}}
    scheduler = Scheduler(app, clock=clock)
    run([scheduler], clock, 86400, step=60)
    tz = scheduler.tz
    assert [str(dt.datetime.fromtimestamp(d, tz)) for d in dues(sent(app))] == expected


def celeriac_tz(name: str) -> dt.tzinfo:
    from celeriac.schedules import timezone

    return timezone(name)


# -- missed fires ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("policy", "extra"), [("skip", 0), ("run_once", 1)])
def test_missed_fires_after_downtime_follow_the_policy(
    make_app: AppFactory, clock: FakeClock, policy: str, extra: int
) -> None:
    settings = {"beat_missed_after": 5.0}
    app = make_app(**settings)
    app.conf.beat_schedule = {"e": {"task": "t", "schedule": 10.0, "missed": policy}}
    run([Scheduler(app, clock=clock)], clock, 31)  # fires at +10, +20, +30
    assert len(sent(app)) == 3
    clock.advance(1006)  # every beat is down for a while; no fire is due in the last 5 s
    restarted_app = make_app(**settings)
    restarted_app.conf.beat_schedule = app.conf.beat_schedule
    restarted = Scheduler(restarted_app, clock=clock)
    restarted.tick()
    late = sent(app)
    assert len(late) == extra
    if extra:  # the last missed fire, sent once, keyed (and so deduplicated) by its due time
        assert late[0].headers["beat_due"] == START + 1030
    run([restarted], clock, 20)
    assert dues(sent(app)) == [START + 1040, START + 1050]


def test_a_late_beat_is_not_a_missed_one(make_app: AppFactory, clock: FakeClock) -> None:
    app = every_second(make_app(beat_missed_after=30.0))
    scheduler = Scheduler(app, clock=clock)
    scheduler.tick()
    clock.advance(12.5)  # a stall shorter than beat_missed_after: every fire is still sent
    scheduler.tick()
    assert dues(sent(app)) == [START + s for s in range(1, 13)]


def test_a_beat_frozen_past_the_limit_does_not_resend(
    make_app: AppFactory, clock: FakeClock
) -> None:
    frozen, awake = (
        Scheduler(every_second(make_app(), missed="run_once"), clock=clock) for _ in "ab"
    )
    run([frozen, awake], clock, 5)
    run([awake], clock, 100)  # the frozen one is stopped (SIGSTOP) meanwhile
    run([frozen, awake], clock, 5)
    assert dues(sent(awake.app)) == [START + s for s in range(1, 111)]


def test_an_expired_fire_is_dropped(make_app: AppFactory, clock: FakeClock) -> None:
    app = every_second(make_app(), options={"expires": 2})
    scheduler = Scheduler(app, clock=clock)
    scheduler.tick()
    clock.advance(5.5)  # beat was stuck: fires due 1..3 waited longer than they may
    scheduler.tick()
    assert dues(sent(app)) == [START + 4, START + 5]


# -- control at run time ---------------------------------------------------------------------------
def test_pause_resume_and_run_now(make_app: AppFactory, clock: FakeClock) -> None:
    app = every_second(make_app(), missed="run_once")
    scheduler, control = Scheduler(app, clock=clock), ScheduleControl(app)
    run([scheduler], clock, 3)
    control.pause("tick")
    run([scheduler], clock, 100)
    assert dues(sent(app)) == [START + 1, START + 2, START + 3]
    manual = control.run("tick")  # run now works on a paused entry
    (message,) = sent(app)
    assert (message.id, message.headers["beat_entry"]) == (manual, "tick")
    control.resume("tick")
    restarted = Scheduler(app, clock=clock)  # a beat that starts now does not catch up either
    run([scheduler, restarted], clock, 3)
    assert len(sent(app)) == 3
    (status,) = control.entries()
    assert (status.name, status.paused, status.runtime) == ("tick", False, False)
    assert status.last_run is not None and status.next_run is not None


def test_entries_added_and_removed_at_run_time(make_app: AppFactory, clock: FakeClock) -> None:
    app = make_app(beat_max_loop_interval=2.0)
    scheduler, control = Scheduler(app, clock=clock), ScheduleControl(make_app())
    scheduler.tick()
    entry = control.add("added", 1.0, "timed.tick", args=(5,), queue="runtime")
    assert entry.runtime
    run([scheduler], clock, 10)
    fired = sent(app, "runtime")
    assert 8 <= len(fired) <= 10  # seen within beat_max_loop_interval
    assert fired[0].arguments(app.serializer) == ([5], {})
    control.remove("added")
    run([scheduler], clock, 3)
    sent(app, "runtime")
    run([scheduler], clock, 10)
    assert sent(app, "runtime") == []
    assert [s.name for s in control.entries()] == []


def test_control_refuses_what_it_cannot_do(make_app: AppFactory) -> None:
    app = every_second(make_app())
    control = ScheduleControl(app)
    with pytest.raises(celeriac.ConfigurationError, match="no schedule entry named 'nope'"):
        control.pause("nope")
    with pytest.raises(celeriac.ConfigurationError, match="defined in the app's code"):
        control.remove("tick")
    with pytest.raises(celeriac.ConfigurationError, match="defined in the app's code"):
        control.add("tick", 5, "t")
    with pytest.raises(celeriac.ConfigurationError, match="not JSON"):
        control.add("odd", 5, "t", args=(object(),))


# -- outages ---------------------------------------------------------------------------------------
def test_a_broker_outage_delays_fires_without_losing_or_doubling_them(
    make_app: AppFactory, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = every_second(make_app())
    scheduler = Scheduler(app, clock=clock)
    run([scheduler], clock, 2)

    def down(*args: Any, **kwargs: Any) -> bool:
        raise PublishError("broker down")

    monkeypatch.setattr(app.broker, "publish_once", down)
    clock.advance(3)
    with pytest.raises(PublishError):
        scheduler.tick()
    monkeypatch.undo()
    scheduler.tick()
    assert dues(sent(app)) == [START + s for s in range(1, 6)]


# -- workers run what beat sends -------------------------------------------------------------------
def test_a_worker_runs_the_fires(make_app: AppFactory, clock: FakeClock) -> None:
    app = make_app()
    runs: list[tuple[Any, ...]] = []

    @app.task(bind=True, name="timed.tick")
    def tick(self: Any, label: str) -> None:
        runs.append((label, self.request.headers["beat_due"]))

    every_second(app, args=("x",))
    run([Scheduler(app, clock=clock)], clock, 3)
    in_process_worker(app).drain()
    assert runs == [("x", START + 1), ("x", START + 2), ("x", START + 3)]


def test_scheduled_workflows_are_started_once_by_a_worker(
    make_app: AppFactory, clock: FakeClock
) -> None:
    app = make_app()
    runs: list[int] = []

    @app.task
    def step(x: int) -> int:
        runs.append(x)
        return x + 1

    app.add_periodic_task(10.0, chain(step.s(1), step.s()), name="chain")
    app.add_periodic_task(10.0, group(step.s(100), step.s(200)), name="group")
    flow = dag("nightly", app=app)  # no dict form: the worker finds it by entry name
    flow.add(step.s(), name="second", after=[flow.add(step.s(5), name="first")])
    app.add_periodic_task(10.0, flow, name="dag")
    app.finalize()  # registers the built-in task that starts workflows, as a worker does
    run([Scheduler(app, clock=clock), Scheduler(app, clock=clock)], clock, 10)
    worker = in_process_worker(app)
    while worker.drain():
        pass
    assert sorted(runs) == [1, 2, 5, 6, 100, 200]


def test_a_workflow_without_a_dict_form_cannot_be_added_at_run_time(
    make_app: AppFactory,
) -> None:
    app = make_app()
    flow = dag("nightly", app=app)
    with pytest.raises(celeriac.ConfigurationError, match="cannot be stored: define it in code"):
        ScheduleControl(app).add("flow", 10.0, flow)
