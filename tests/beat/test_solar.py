"""``solar`` schedules: astral's times, polar days and nights, stored like the other schedules,
and fired by beat."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from celeriac.beat import Scheduler
from celeriac.exceptions import ConfigurationError
from celeriac.schedules import UTC, schedule_from_dict, solar
from support.clock import FakeClock

from .conftest import AppFactory
from .test_scheduler import dues, sent

LONDON = (51.5, -0.12)
LONGYEARBYEN = (78.22, 15.65)  # midnight sun from April to August
TZ = ZoneInfo("UTC")


def at(year: int, month: int, day: int) -> dt.datetime:
    return dt.datetime(year, month, day, tzinfo=UTC)


def test_sunrise_and_the_other_events_in_london_on_midsummer() -> None:
    astral_sun = pytest.importorskip("astral.sun")
    from astral import Observer

    observer = Observer(*LONDON)
    day = dt.date(2024, 6, 21)
    midnight = at(2024, 6, 21)
    fire = solar("sunrise", *LONDON).next_after(midnight, TZ)
    assert fire == astral_sun.sunrise(observer, day, tzinfo=UTC)
    assert fire is not None and (fire.hour, fire.minute) == (3, 43)
    noon = solar("solar_noon", *LONDON).next_after(midnight, TZ)
    assert noon is not None and (noon.hour, noon.minute) == (12, 2)
    dusk = solar("dusk_civil", *LONDON).next_after(midnight, TZ)
    assert dusk == astral_sun.dusk(observer, day, depression=6, tzinfo=UTC)
    # the next one is tomorrow's
    again = solar("sunrise", *LONDON).next_after(fire, TZ)
    assert again is not None and again.date() == dt.date(2024, 6, 22)


def test_a_day_without_the_event_is_skipped_not_a_crash() -> None:
    pytest.importorskip("astral")
    # astronomical dawn never comes in a London midsummer: the sun stays above -18 degrees
    london = solar("dawn_astronomical", *LONDON)
    assert london.on(dt.date(2024, 6, 21)) is None
    fire = london.next_after(at(2024, 6, 21), TZ)
    assert fire is not None and dt.date(2024, 7, 1) < fire.date() < dt.date(2024, 8, 15)
    # midnight sun in Svalbard: the next sunset is in August
    svalbard = solar("sunset", *LONGYEARBYEN)
    assert svalbard.on(dt.date(2024, 6, 21)) is None
    fire = svalbard.next_after(at(2024, 6, 1), TZ)
    assert fire is not None and fire.month == 8


def test_solar_is_stored_like_the_other_schedules() -> None:
    original = solar("dusk_nautical", 40.7, -74.0)
    back = schedule_from_dict(original.to_dict())
    assert back == original and isinstance(back, solar)
    assert back.to_dict() == {"type": "solar", "event": "dusk_nautical", "lat": 40.7, "lon": -74.0}


def test_bad_arguments_are_errors() -> None:
    with pytest.raises(ConfigurationError, match="unknown solar event 'moonrise'"):
        solar("moonrise", 0, 0)
    with pytest.raises(ConfigurationError, match="latitude"):
        solar("sunrise", 91, 0)


def test_beat_sends_at_sunrise(make_app: AppFactory, clock: FakeClock) -> None:
    pytest.importorskip("astral")
    rise = solar("sunrise", *LONDON).on(dt.date(2024, 6, 1))
    assert rise is not None
    clock.advance(rise.timestamp() - 10 - clock())  # ten seconds before sunrise
    app = make_app()
    app.conf.beat_schedule = {
        "open-curtains": {"task": "timed.tick", "schedule": solar("sunrise", *LONDON)}
    }
    beat = Scheduler(app, clock=clock)
    for _ in range(80):
        clock.advance(0.25)
        beat.tick()
    assert dues(sent(app)) == [rise.timestamp()]


def test_without_astral_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "astral", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'celeriac\[solar\]'"):
        solar("sunrise", *LONDON).next_after(at(2024, 6, 1), TZ)
