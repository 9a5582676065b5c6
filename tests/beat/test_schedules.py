"""Interval and one-off schedules, reading ``beat_schedule`` values, and ``last_between``."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from celeriac import ConfigurationError, clocked, crontab, schedule
from celeriac.schedules import as_schedule, schedule_from_dict, timezone

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")


def at(text: str, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz)


# -- every N seconds -------------------------------------------------------------------------------
def test_an_interval_fires_on_a_grid_from_the_epoch() -> None:
    every_30s = schedule(30)
    assert every_30s.next_after(at("2024-06-01 10:00:10"), UTC) == at("2024-06-01 10:00:30")
    assert every_30s.next_after(at("2024-06-01 10:00:30"), UTC) == at("2024-06-01 10:01:00")
    assert every_30s.run_every == dt.timedelta(seconds=30)


def test_every_beat_computes_the_same_fire_whenever_it_asks() -> None:
    every_7s = schedule(dt.timedelta(seconds=7))
    moments = [at("2024-06-01 10:00:00") + dt.timedelta(seconds=s / 10) for s in range(70)]
    fires = {every_7s.next_after(m, UTC) for m in moments}
    assert len(fires) == 2  # 70 lookups over 7 seconds: one grid point, then the next


def test_sub_second_intervals_are_exact() -> None:
    tenth = schedule(0.1)
    moment = at("2024-06-01 10:00:00")
    for _ in range(25):
        moment = tenth.next_after(moment, UTC)  # type: ignore[assignment]
    assert moment == at("2024-06-01 10:00:02.500000")


def test_a_relative_interval_counts_in_local_time() -> None:
    hourly = schedule(3600, relative=True)
    # India is UTC+05:30: the grid from the epoch would fire at :30 local; relative fires at :00.
    assert schedule(3600).next_after(at("2024-06-01 10:10", KOLKATA), KOLKATA) == at(
        "2024-06-01 10:30", KOLKATA
    )
    assert hourly.next_after(at("2024-06-01 10:10", KOLKATA), KOLKATA) == at(
        "2024-06-01 11:00", KOLKATA
    )
    daily = schedule(dt.timedelta(days=1), relative=True)
    assert daily.next_after(at("2024-06-01 10:10", BERLIN), BERLIN) == at(
        "2024-06-02 00:00", BERLIN
    )


def test_a_relative_day_on_a_clock_change_is_local_midnight() -> None:
    daily = schedule(86400, relative=True)
    after_change = daily.next_after(at("2024-03-31 12:00", BERLIN), BERLIN)
    assert str(after_change) == "2024-04-01 00:00:00+02:00"


@pytest.mark.parametrize("bad", [0, -1, "30", True, None])
def test_an_interval_must_be_positive_seconds(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="run_every"):
        schedule(bad)  # type: ignore[arg-type]


# -- once ------------------------------------------------------------------------------------------
def test_clocked_fires_once() -> None:
    once = clocked(at("2024-06-01 12:00"))
    assert once.next_after(at("2024-06-01 11:00"), UTC) == at("2024-06-01 12:00")
    assert once.next_after(at("2024-06-01 12:00"), UTC) is None


def test_a_naive_clocked_time_is_local_time() -> None:
    once = clocked(dt.datetime(2024, 6, 1, 12, 0))
    assert once.next_after(at("2024-06-01 00:00"), BERLIN) == at("2024-06-01 12:00", BERLIN)
    skipped = clocked(dt.datetime(2024, 3, 31, 2, 30))
    assert str(skipped.next_after(at("2024-03-30 00:00"), BERLIN)) == "2024-03-31 03:00:00+02:00"


def test_clocked_needs_a_datetime() -> None:
    with pytest.raises(ConfigurationError, match="must be a datetime"):
        clocked("tomorrow")  # type: ignore[arg-type]


# -- the latest fire in a stretch (for missed fires) -----------------------------------------------
def test_last_between() -> None:
    start, end = at("2024-06-01 00:00"), at("2024-06-03 12:00")
    assert schedule(30).last_between(start, end, UTC) == end
    seven_hours = schedule(3600 * 7)
    last = seven_hours.last_between(start, end, UTC)
    assert last is not None and last.timestamp() % (3600 * 7) == 0
    assert last <= end < seven_hours.next_after(last, UTC)  # type: ignore[operator]
    assert crontab(hour=2, minute=0).last_between(start, end, UTC) == at("2024-06-03 02:00")
    assert crontab(minute="*/5").last_between(start, end, UTC) == end
    monthly = crontab.from_string("0 0 1 * *")
    assert monthly.last_between(at("2024-01-15 00:00"), end, UTC) == at("2024-06-01 00:00")
    assert monthly.last_between(at("2024-06-01 00:00"), end, UTC) is None
    hourly = schedule(3600, relative=True)
    assert hourly.last_between(start, at("2024-06-03 11:59", KOLKATA), KOLKATA) == at(
        "2024-06-03 11:00", KOLKATA
    )
    assert clocked(at("2024-06-02 00:00")).last_between(start, end, UTC) == at("2024-06-02 00:00")
    assert clocked(at("2024-06-02 00:00")).last_between(end, end, UTC) is None


# -- what beat_schedule accepts --------------------------------------------------------------------
def test_as_schedule_reads_numbers_timedeltas_cron_strings_and_datetimes() -> None:
    assert as_schedule(30.0) == schedule(30)
    assert as_schedule(dt.timedelta(minutes=1), relative=True) == schedule(60, relative=True)
    assert as_schedule("*/5 * * * *") == crontab(minute="*/5")
    assert as_schedule(at("2024-06-01 12:00")) == clocked(at("2024-06-01 12:00"))
    nightly = crontab(hour=2, minute=0)
    assert as_schedule(nightly) is nightly
    with pytest.raises(ConfigurationError, match="entry 'x': \\[1\\] is not a schedule"):
        as_schedule([1], what="entry 'x'")


@pytest.mark.parametrize(
    "original",
    [schedule(30), schedule(60, relative=True), clocked(at("2024-06-01 12:00")), crontab(0, 2)],
)
def test_every_schedule_round_trips_through_a_dict(original: object) -> None:
    assert schedule_from_dict(original.to_dict()) == original  # type: ignore[attr-defined]


def test_an_unknown_time_zone_is_a_configuration_error() -> None:
    assert timezone("Asia/Shanghai").key == "Asia/Shanghai"
    with pytest.raises(ConfigurationError, match=r"unknown time zone 'Mars/Olympus'.*tzdata"):
        timezone("Mars/Olympus")
