"""``crontab``: Celery's cron schedule, and the parser of its fields."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from celeriac.exceptions import ConfigurationError
from celeriac.schedules.base import MINUTE, Schedule, next_instant

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_NAMES = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # the most each month can have
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# name: (lowest, highest, names); day_of_week also takes 7 for Sunday, as cron does.
FIELDS: dict[str, tuple[int, int, dict[str, int]]] = {
    "minute": (0, 59, {}),
    "hour": (0, 23, {}),
    "day_of_week": (0, 6, {n: i for names in (_DAYS, _DAY_NAMES) for i, n in enumerate(names)}),
    "day_of_month": (1, 31, {}),
    "month_of_year": (
        1,
        12,
        {n: i + 1 for names in (_MONTHS, _MONTH_NAMES) for i, n in enumerate(names)},
    ),
}

CronField = str | int | Iterable[int]


def _field_text(spec: CronField) -> str:
    if isinstance(spec, str):
        return spec.strip()
    if isinstance(spec, int) and not isinstance(spec, bool):
        return str(spec)
    if isinstance(spec, Iterable):
        return ",".join(str(v) for v in sorted(spec))
    return repr(spec)


class _FieldParser:
    """Expands one crontab field (``'*/15'``, ``'1-5'``, ``'mon-fri'``, ``'1,3-9/2'``)."""

    def __init__(self, name: str, text: str) -> None:
        self.name, self.text = name, text
        self.low, self.high, self.names = FIELDS[name]
        self.top = 7 if name == "day_of_week" else self.high

    def fail(self, reason: str) -> ConfigurationError:
        return ConfigurationError(f"crontab {self.name}={self.text!r}: {reason}")

    def parse(self) -> frozenset[int]:
        if not self.text:
            raise self.fail("empty field")
        values: set[int] = set()
        for part in self.text.lower().split(","):
            values.update(self._part(part.strip()))
        return frozenset(values)

    def _part(self, part: str) -> list[int]:
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise self.fail(f"step {step_text!r} must be a whole number of at least 1")
            step = int(step_text)
        if base == "*":
            start, end = self.low, self.high
        elif not base:
            raise self.fail("empty list item" if not slash else "nothing before '/'")
        else:
            first, dash, last = base.partition("-")
            if dash and not (first and last):
                raise self.fail(f"range {base!r} needs a start and an end")
            start = self._value(first)
            end = self._value(last) if dash else (self.high if slash else start)
        if start <= end:
            span = list(range(start, end + 1))
        else:  # a range that wraps around, as Celery allows: 'fri-mon', '22-2'
            span = list(range(start, self.high + 1)) + list(range(self.low, end + 1))
        return span[::step]

    def _value(self, token: str) -> int:
        if token.isdigit():
            number = int(token)
            if not self.low <= number <= self.top:
                raise self.fail(f"{number} is outside {self.low}-{self.top}")
            return 0 if number == 7 and self.name == "day_of_week" else number
        if token in self.names:
            return self.names[token]
        kind = "day" if self.name == "day_of_week" else "month"
        raise self.fail(f"{token!r} is not a number" + (f" or a {kind} name" if self.names else ""))


class crontab(Schedule):  # lowercase: Celery's name
    """Fires when the local time matches every field, as cron does (Celery's argument order).

    Each field takes ``'*'``, a number, ``'a-b'``, ``'*/n'``, ``'a-b/n'``, ``'a/n'`` (a to the
    end), comma lists of these, names of days (``'mon-fri'``) and months (``'jan,jul'``), or a
    set of numbers. ``day_of_week`` counts from Sunday (0; 7 is Sunday too). As in Celery, a
    day must match ``day_of_week`` *and* ``day_of_month`` *and* ``month_of_year``.
    ``crontab('*/15 * * * 1-5')`` (one five-field cron string) equals
    ``crontab.from_string('*/15 * * * 1-5')``.

    Raises:
        ConfigurationError: a bad field (the message names it), or fields no date can match.
    """

    def __init__(
        self,
        minute: CronField = "*",
        hour: CronField = "*",
        day_of_week: CronField = "*",
        day_of_month: CronField = "*",
        month_of_year: CronField = "*",
    ) -> None:
        fields = {
            "minute": minute,
            "hour": hour,
            "day_of_week": day_of_week,
            "day_of_month": day_of_month,
            "month_of_year": month_of_year,
        }
        if isinstance(minute, str) and (" " in minute.strip() or minute.startswith("@")):
            if any(v != "*" for k, v in fields.items() if k != "minute"):
                raise ConfigurationError(
                    f"crontab({minute!r}, ...): give a cron string alone, or fields alone"
                )
            fields = dict(_cron_fields(minute))
        self._text = {name: _field_text(spec) for name, spec in fields.items()}
        parsed = {name: _FieldParser(name, text).parse() for name, text in self._text.items()}
        self.minute, self.hour = parsed["minute"], parsed["hour"]
        self.day_of_week, self.day_of_month = parsed["day_of_week"], parsed["day_of_month"]
        self.month_of_year = parsed["month_of_year"]
        self._sorted = {name: tuple(sorted(values)) for name, values in parsed.items()}
        self._every_hour = len(self.hour) == 24
        if not any(min(self.day_of_month) <= _MONTH_DAYS[m - 1] for m in self.month_of_year):
            raise ConfigurationError(
                f"crontab day_of_month={self._text['day_of_month']!r}, "
                f"month_of_year={self._text['month_of_year']!r}: no such date"
            )

    @classmethod
    def from_string(cls, expression: str) -> crontab:
        """A crontab from a cron line's five fields: ``'minute hour day month weekday'``
        (also ``@daily``, ``@hourly``, ``@weekly``, ``@monthly``, ``@yearly``).

        Raises:
            ConfigurationError: not five fields, or a bad field (the message names it).
        """
        return cls(**_cron_fields(expression))

    def __repr__(self) -> str:
        return f"<crontab: {self} (m h dom mon dow)>"

    def __str__(self) -> str:
        t = self._text
        return " ".join(
            t[k] for k in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (the fields as written)."""
        return {"type": "crontab", **self._text}

    def _identity(self) -> tuple[Any, ...]:
        # '*/15' and '0,15,30,45' are the same schedule, as in Celery.
        return tuple(tuple(self._sorted[k]) for k in FIELDS)

    def next_after(self, moment: dt.datetime, tz: ZoneInfo) -> dt.datetime | None:
        """The first matching minute after ``moment``, by local time in ``tz``.

        Raises:
            ValueError: ``moment`` is naive.
        """
        return next_instant(moment, tz, self._next_wall, both_folds=self._every_hour)

    def _day_matches(self, day: dt.date) -> bool:
        return day.day in self.day_of_month and day.isoweekday() % 7 in self.day_of_week

    def _next_wall(self, wall: dt.datetime) -> dt.datetime | None:
        """The first matching local time at or after ``wall`` (naive), or None."""
        if wall.second or wall.microsecond:
            wall = wall.replace(second=0, microsecond=0) + MINUTE
        limit = wall.year + 400  # the calendar repeats every 400 years
        months, hours, minutes = (self._sorted[k] for k in ("month_of_year", "hour", "minute"))
        while wall.year <= min(limit, dt.MAXYEAR - 1):
            if wall.month not in self.month_of_year:
                i = bisect.bisect_right(months, wall.month)
                year, month = (wall.year, months[i]) if i < len(months) else (wall.year + 1, 0)
                wall = dt.datetime(year, month or months[0], 1)
            elif not self._day_matches(wall.date()):
                wall = dt.datetime.combine(wall.date() + dt.timedelta(days=1), dt.time())
            elif wall.hour not in self.hour:
                i = bisect.bisect_right(hours, wall.hour)
                wall = (
                    wall.replace(hour=hours[i], minute=0)
                    if i < len(hours)
                    else dt.datetime.combine(wall.date() + dt.timedelta(days=1), dt.time())
                )
            elif wall.minute not in self.minute:
                i = bisect.bisect_right(minutes, wall.minute)
                wall = (
                    wall.replace(minute=minutes[i])
                    if i < len(minutes)
                    else wall.replace(minute=0) + dt.timedelta(hours=1)
                )
            else:
                return wall
        return None


def _cron_fields(expression: str) -> dict[str, str]:
    text = _ALIASES.get(expression.strip().lower(), expression)
    parts = text.split()
    if len(parts) != 5:
        raise ConfigurationError(
            f"cron expression {expression!r} has {len(parts)} fields, not 5 "
            "(minute hour day-of-month month day-of-week)"
        )
    minute, hour, day_of_month, month_of_year, day_of_week = parts
    return {
        "minute": minute,
        "hour": hour,
        "day_of_week": day_of_week,
        "day_of_month": day_of_month,
        "month_of_year": month_of_year,
    }
