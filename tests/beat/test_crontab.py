"""``crontab``: its forms, its errors, and its next fire, checked against croniter."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from celeriac import ConfigurationError, crontab
from celeriac.schedules import schedule_from_dict

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def fires(sched: crontab, start: dt.datetime, tz: ZoneInfo, count: int) -> list[dt.datetime]:
    found, moment = [], start
    for _ in range(count):
        nxt = sched.next_after(moment, tz)
        assert nxt is not None
        found.append(nxt)
        moment = nxt
    return found


# -- forms -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field", "expected"),
    [
        ({"minute": "*/15"}, "minute", {0, 15, 30, 45}),
        ({"minute": "1-10/2"}, "minute", {1, 3, 5, 7, 9}),
        ({"minute": "50/5"}, "minute", {50, 55}),
        ({"minute": "0,30"}, "minute", {0, 30}),
        ({"minute": 7}, "minute", {7}),
        ({"minute": {5, 10}}, "minute", {5, 10}),
        ({"hour": "22-2"}, "hour", {22, 23, 0, 1, 2}),
        ({"day_of_week": "mon-fri"}, "day_of_week", {1, 2, 3, 4, 5}),
        ({"day_of_week": "Saturday,sun"}, "day_of_week", {6, 0}),
        ({"day_of_week": "fri-mon"}, "day_of_week", {5, 6, 0, 1}),
        ({"day_of_week": "7"}, "day_of_week", {0}),
        ({"day_of_week": "1-7"}, "day_of_week", set(range(7))),
        ({"day_of_week": "*/2"}, "day_of_week", {0, 2, 4, 6}),
        ({"day_of_month": "*/10"}, "day_of_month", {1, 11, 21, 31}),
        ({"month_of_year": "jan,jul-aug"}, "month_of_year", {1, 7, 8}),
        ({"month_of_year": "*/3"}, "month_of_year", {1, 4, 7, 10}),
    ],
)
def test_fields_take_celerys_forms(
    kwargs: dict[str, object], field: str, expected: set[int]
) -> None:
    assert getattr(crontab(**kwargs), field) == expected  # type: ignore[arg-type]


def test_a_cron_string_reads_minute_hour_day_month_weekday() -> None:
    parsed = crontab.from_string("*/15 9-17 1,15 jan-jun 1-5")
    assert parsed.minute == {0, 15, 30, 45}
    assert parsed.hour == set(range(9, 18))
    assert parsed.day_of_month == {1, 15}
    assert parsed.month_of_year == set(range(1, 7))
    assert parsed.day_of_week == {1, 2, 3, 4, 5}
    assert crontab("*/15 9-17 1,15 jan-jun 1-5") == parsed
    assert str(parsed) == "*/15 9-17 1,15 jan-jun 1-5"


def test_aliases_and_equality() -> None:
    assert crontab.from_string("@daily") == crontab(minute=0, hour=0)
    assert crontab.from_string("@hourly") == crontab(minute=0)
    assert crontab(minute="*/15") == crontab(minute="0,15,30,45")
    assert crontab(minute="*/15") != crontab(minute="*/20")
    assert len({crontab(minute="*/15"), crontab(minute="0,15,30,45")}) == 1


def test_to_dict_round_trips() -> None:
    original = crontab(minute="*/5", hour="9-17", day_of_week="mon-fri")
    assert schedule_from_dict(original.to_dict()) == original
    assert original.to_dict()["day_of_week"] == "mon-fri"


# -- errors point at the field ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hour": 25}, "crontab hour='25': 25 is outside 0-23"),
        ({"minute": "60"}, "crontab minute='60': 60 is outside 0-59"),
        ({"minute": "*/0"}, "crontab minute='*/0': step '0' must be a whole number"),
        ({"minute": "1-"}, "crontab minute='1-': range '1-' needs a start and an end"),
        ({"minute": "1,,2"}, "crontab minute='1,,2': empty list item"),
        ({"hour": ""}, "crontab hour='': empty field"),
        ({"day_of_week": "funday"}, "crontab day_of_week='funday': 'funday' is not a number or"),
        ({"day_of_week": "8"}, "crontab day_of_week='8': 8 is outside 0-7"),
        ({"day_of_month": "0"}, "crontab day_of_month='0': 0 is outside 1-31"),
        ({"month_of_year": "13"}, "crontab month_of_year='13': 13 is outside 1-12"),
        ({"month_of_year": "smarch"}, "'smarch' is not a number or a month name"),
        ({"day_of_month": 31, "month_of_year": "feb"}, "day_of_month='31', month_of_year='feb'"),
    ],
)
def test_a_bad_field_is_named_in_the_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        crontab(**kwargs)  # type: ignore[arg-type]
    assert message in str(raised.value)


def test_a_cron_string_needs_five_fields() -> None:
    with pytest.raises(ConfigurationError, match="has 3 fields, not 5"):
        crontab.from_string("* * *")
    with pytest.raises(ConfigurationError, match="crontab hour='24'"):
        crontab.from_string("0 24 * * *")
    with pytest.raises(ConfigurationError, match="cron string alone"):
        crontab("0 2 * * *", hour=3)


# -- next fire -------------------------------------------------------------------------------------
def test_next_after_is_strictly_after_and_in_the_zone() -> None:
    nightly = crontab(hour=2, minute=0)
    shanghai = ZoneInfo("Asia/Shanghai")
    start = dt.datetime(2024, 6, 1, 2, 0, tzinfo=shanghai)
    assert nightly.next_after(start, shanghai) == dt.datetime(2024, 6, 2, 2, 0, tzinfo=shanghai)
    just_before = start - dt.timedelta(microseconds=1)
    assert nightly.next_after(just_before, shanghai) == start
    assert nightly.next_after(start, shanghai).tzinfo is shanghai  # type: ignore[union-attr]


def test_next_after_refuses_a_naive_moment() -> None:
    with pytest.raises(ValueError, match="naive"):
        crontab().next_after(dt.datetime(2024, 1, 1), BERLIN)


def test_days_must_match_weekday_and_day_of_month_as_in_celery() -> None:
    friday_13th = crontab(minute=0, hour=0, day_of_week="fri", day_of_month=13)
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert fires(friday_13th, start, UTC, 3) == [
        dt.datetime(2024, 9, 13, tzinfo=UTC),
        dt.datetime(2024, 12, 13, tzinfo=UTC),
        dt.datetime(2025, 6, 13, tzinfo=UTC),
    ]


def test_a_rare_date_is_found_across_the_centuries_rule() -> None:
    # 29 February on a Monday: 2044, then 2072, then (2100 is no leap year) 2112.
    leap_monday = crontab.from_string("0 0 29 2 mon")
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert [f.year for f in fires(leap_monday, start, UTC, 3)] == [2044, 2072, 2112]


# -- daylight saving -------------------------------------------------------------------------------
def test_a_time_skipped_in_spring_fires_once_at_the_end_of_the_gap() -> None:
    at_0230 = crontab(hour=2, minute=30)
    start = dt.datetime(2024, 3, 30, 12, 0, tzinfo=BERLIN)
    assert [str(f) for f in fires(at_0230, start, BERLIN, 3)] == [
        "2024-03-31 03:00:00+02:00",
        "2024-04-01 02:30:00+02:00",
        "2024-04-02 02:30:00+02:00",
    ]


def test_several_skipped_times_are_one_fire() -> None:
    skipped_hour = crontab(hour=2, minute="0,20,40")
    start = dt.datetime(2024, 3, 10, 0, 0, tzinfo=NEW_YORK)
    assert [str(f) for f in fires(skipped_hour, start, NEW_YORK, 2)] == [
        "2024-03-10 03:00:00-04:00",
        "2024-03-11 02:00:00-04:00",
    ]


def test_a_time_repeated_in_autumn_fires_once() -> None:
    at_0130 = crontab(hour=1, minute=30)
    start = dt.datetime(2024, 11, 2, 12, 0, tzinfo=NEW_YORK)
    found = fires(at_0130, start, NEW_YORK, 2)
    assert [str(f) for f in found] == ["2024-11-03 01:30:00-04:00", "2024-11-04 01:30:00-05:00"]
    # Asked from inside the repeated hour (its second pass), the next fire is the next day.
    second_pass = dt.datetime(2024, 11, 3, 6, 45, tzinfo=UTC)  # 01:45 EST, the second 01:45
    assert at_0130.next_after(second_pass, NEW_YORK) == found[1]


def test_every_hour_schedules_follow_elapsed_time_across_both_changes() -> None:
    half_past = crontab(minute=30)
    spring = fires(half_past, dt.datetime(2024, 3, 31, 0, 0, tzinfo=BERLIN), BERLIN, 3)
    assert [str(f) for f in spring] == [
        "2024-03-31 00:30:00+01:00",
        "2024-03-31 01:30:00+01:00",
        "2024-03-31 03:30:00+02:00",  # 02:30 never happened: nothing to run
    ]
    autumn = fires(half_past, dt.datetime(2024, 10, 27, 1, 0, tzinfo=BERLIN), BERLIN, 4)
    assert [str(f) for f in autumn] == [
        "2024-10-27 01:30:00+02:00",
        "2024-10-27 02:30:00+02:00",
        "2024-10-27 02:30:00+01:00",  # the repeated hour is an hour like any other
        "2024-10-27 03:30:00+01:00",
    ]


# -- against croniter ------------------------------------------------------------------------------
def _random_field(rng: random.Random, low: int, high: int) -> str:
    roll = rng.random()
    if roll < 0.3:
        return "*"
    if roll < 0.45:
        return f"*/{rng.randint(1, high - low + 1)}"

    def item() -> str:
        # croniter misreads one-value ranges ('6-6' as a whole week), so ranges have two ends.
        start = rng.randint(low, high - 1)
        end = rng.randint(start + 1, high)
        kind = rng.random()
        if kind < 0.4:
            return str(start)
        if kind < 0.7:
            return f"{start}-{end}"
        return f"{start}-{end}/{rng.randint(1, end - start + 1)}"

    return ",".join(item() for _ in range(rng.randint(1, 3)))


def _random_expression(rng: random.Random, hour: str | None = None) -> str:
    fields = [
        _random_field(rng, 0, 59),
        hour or _random_field(rng, 0, 23),
        _random_field(rng, 1, 31),
        _random_field(rng, 1, 12),
        _random_field(rng, 0, 6),
    ]
    return " ".join(fields)


@pytest.mark.parametrize(
    "zone", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
)
def test_next_fire_agrees_with_croniter_on_random_expressions(zone: str) -> None:
    rng, tz = random.Random(f"crontab-{zone}"), ZoneInfo(zone)
    base = dt.datetime(2020, 1, 1, tzinfo=UTC)
    compared = 0
    while compared < 700:
        expression = _random_expression(rng)
        try:
            sched = crontab.from_string(expression)
        except ConfigurationError:  # no such date (31 February): croniter would loop
            continue
        start = base + dt.timedelta(seconds=rng.randint(0, 8 * 365 * 86400))
        expected = croniter(expression, start.astimezone(tz), day_or=False).get_next(dt.datetime)
        assert sched.next_after(start, tz) == expected, (expression, zone, start)
        compared += 1


@pytest.mark.parametrize(
    ("zone", "changes"),
    [
        ("Europe/Berlin", ["2024-03-31T01:00:00+00:00", "2024-10-27T01:00:00+00:00"]),
        ("America/New_York", ["2024-03-10T07:00:00+00:00", "2024-11-03T06:00:00+00:00"]),
    ],
)
def test_next_fire_around_clock_changes_agrees_with_croniter_but_for_repeats(
    zone: str, changes: list[str]
) -> None:
    """Near a change, croniter and celeriac agree, except that croniter fires a fixed-hour time
    twice when the clock repeats it; celeriac fires it once (the next fire is croniter's next)."""
    rng, tz = random.Random(f"dst-{zone}"), ZoneInfo(zone)
    repeats = 0
    for _ in range(1500):
        hour = rng.choice(["*", "1-3", "2", "0-4/2", None])
        expression = _random_expression(rng, hour).rsplit(" ", 3)[0] + " * * *"
        sched = crontab.from_string(expression)
        change = dt.datetime.fromisoformat(rng.choice(changes))
        start = change + dt.timedelta(seconds=rng.randint(-4 * 3600, 4 * 3600))
        theirs = croniter(expression, start.astimezone(tz), day_or=False)
        expected = theirs.get_next(dt.datetime)
        ours = sched.next_after(start, tz)
        if ours != expected and expected.fold == 1 and len(sched.hour) < 24:
            repeats += 1
            expected = theirs.get_next(dt.datetime)
            while expected.fold == 1:
                expected = theirs.get_next(dt.datetime)
        assert ours == expected, (expression, zone, start)
    assert repeats > 10  # the repeated hour was really exercised
