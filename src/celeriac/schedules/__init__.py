"""Schedules: when a periodic task is due.

``crontab`` (Celery's fields, or a five-field cron string), ``schedule`` (every N seconds),
``clocked`` (once, at a set time) and ``solar`` (a sun event at a place; needs astral). Each
answers one question, as a pure function of its arguments: ``next_after(moment, tz)``, the
first fire strictly after ``moment`` (an aware datetime), with wall-clock fields read in the
time zone ``tz``; None when it never fires again.

Daylight saving, as Vixie cron does it. A schedule with a fixed hour (``crontab(hour=2,
minute=30)``) fires once a day whatever the clocks do: on a day that skips 02:30 it fires once at
the first valid time after the gap (03:00 in Berlin); on a day that repeats 02:30 it fires at the
first 02:30 only. A schedule that fires every hour (``hour='*'``, or a relative ``schedule`` of an
hour or less) is about elapsed time instead: an hour that is skipped never happened, so its
times do not fire, and an hour that repeats fires twice, like any other hour.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from celeriac.exceptions import ConfigurationError
from celeriac.schedules.base import UTC, Schedule, timezone
from celeriac.schedules.cron import FIELDS, crontab
from celeriac.schedules.interval import clocked, schedule
from celeriac.schedules.solar import solar

__all__ = [
    "UTC",
    "Schedule",
    "as_schedule",
    "clocked",
    "crontab",
    "schedule",
    "schedule_from_dict",
    "solar",
    "timezone",
]


def as_schedule(value: object, relative: bool = False, *, what: str = "schedule") -> Schedule:
    """A schedule from what ``beat_schedule`` accepts: a schedule, seconds, a ``timedelta``, a
    cron string, or a ``datetime`` (once).

    Raises:
        ConfigurationError: anything else, or a bad cron string.
    """
    if isinstance(value, Schedule):
        return value
    if isinstance(value, dt.timedelta | int | float) and not isinstance(value, bool):
        return schedule(value, relative=relative)
    if isinstance(value, str):
        try:
            return crontab.from_string(value)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{what}: {exc}") from None
    if isinstance(value, dt.datetime):
        return clocked(value)
    raise ConfigurationError(
        f"{what}: {value!r} is not a schedule (give crontab(...), seconds, a timedelta, "
        "a cron string or a datetime)"
    )


def schedule_from_dict(data: dict[str, Any]) -> Schedule:
    """Rebuild a schedule written by ``to_dict``.

    Raises:
        ConfigurationError: not a schedule description.
    """
    kind = data.get("type")
    if kind == "crontab":
        return crontab(**{k: data[k] for k in FIELDS})
    if kind == "interval":
        return schedule(float(data["seconds"]), relative=bool(data.get("relative")))
    if kind == "solar":
        return solar(str(data["event"]), float(data["lat"]), float(data["lon"]))
    if kind == "clocked":
        return clocked(dt.datetime.fromisoformat(data["at"]))
    raise ConfigurationError(f"not a schedule description: {data!r}")
