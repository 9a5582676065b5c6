"""``schedule`` (every N seconds, on a fixed grid) and ``clocked`` (once)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from celeriac.exceptions import ConfigurationError
from celeriac.schedules.base import (
    EPOCH,
    FOLD_LOOKBACK,
    WALL_EPOCH,
    Schedule,
    aware,
    micros_since,
    next_instant,
    wall_to_instants,
)


class schedule(Schedule):  # lowercase: Celery's name
    """Fires every ``run_every`` (seconds or ``timedelta``), on a fixed grid.

    The grid makes every beat process agree on the fire times without asking each other. With
    ``relative=False`` (the default) it counts from the Unix epoch, so ``schedule(30)`` fires at
    :00 and :30 of each minute, UTC. With ``relative=True`` (Celery's "rounded to the interval")
    it counts in local time in the app's time zone, so ``schedule(3600, relative=True)`` fires
    on the local hour even in a zone offset by half an hour, and a day fires at local midnight.

    Raises:
        ConfigurationError: ``run_every`` is not a positive number of seconds.
    """

    def __init__(self, run_every: float | dt.timedelta, relative: bool = False) -> None:
        if isinstance(run_every, dt.timedelta):
            seconds = run_every.total_seconds()
        elif isinstance(run_every, int | float) and not isinstance(run_every, bool):
            seconds = float(run_every)
        else:
            raise ConfigurationError(
                f"schedule run_every={run_every!r}: must be seconds or a timedelta"
            )
        self._micros = round(seconds * 1_000_000)
        if not self._micros > 0:
            raise ConfigurationError(f"schedule run_every={run_every!r}: must be above 0 seconds")
        self.run_every = dt.timedelta(microseconds=self._micros)
        self.seconds = self._micros / 1_000_000
        self.relative = bool(relative)

    def __repr__(self) -> str:
        return f"<schedule: every {self.seconds:g}s{' relative' if self.relative else ''}>"

    def __str__(self) -> str:
        return f"every {self.seconds:g}s" + (" (local time)" if self.relative else "")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {"type": "interval", "seconds": self.seconds, "relative": self.relative}

    def next_after(self, moment: dt.datetime, tz: ZoneInfo) -> dt.datetime | None:
        """The next grid point after ``moment``.

        Raises:
            ValueError: ``moment`` is naive.
        """
        if self.relative:
            return next_instant(moment, tz, self._next_wall, both_folds=self.seconds <= 3600)
        steps = micros_since(EPOCH, aware(moment)) // self._micros + 1
        return (EPOCH + dt.timedelta(microseconds=steps * self._micros)).astimezone(tz)

    def last_between(
        self, after: dt.datetime, until: dt.datetime, tz: ZoneInfo
    ) -> dt.datetime | None:
        """The latest grid point in ``(after, until]``, or None.

        Raises:
            ValueError: a naive datetime.
        """
        if self.relative:
            # Any stretch of one interval plus the longest gap holds a fire: scan only that.
            window = self.run_every + FOLD_LOOKBACK
            return self._scan(max(after, until - window), until, tz)
        last = EPOCH + dt.timedelta(
            microseconds=micros_since(EPOCH, aware(until)) // self._micros * self._micros
        )
        return last.astimezone(tz) if last > after else None

    def _next_wall(self, wall: dt.datetime) -> dt.datetime:
        steps = -(-micros_since(WALL_EPOCH, wall) // self._micros)  # ceiling
        return WALL_EPOCH + dt.timedelta(microseconds=steps * self._micros)


class clocked(Schedule):  # lowercase: the name django-celery-beat gave it
    """Fires once, at ``clocked_time`` (a naive time is local time in the app's time zone).

    Raises:
        ConfigurationError: ``clocked_time`` is not a datetime.
    """

    def __init__(self, clocked_time: dt.datetime) -> None:
        if not isinstance(clocked_time, dt.datetime):
            raise ConfigurationError(f"clocked({clocked_time!r}): must be a datetime")
        self.clocked_time = clocked_time

    def __repr__(self) -> str:
        return f"<clocked: {self.clocked_time.isoformat()}>"

    def __str__(self) -> str:
        return f"once at {self.clocked_time.isoformat(sep=' ')}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {"type": "clocked", "at": self.clocked_time.isoformat()}

    def at(self, tz: ZoneInfo) -> dt.datetime:
        """The fire time as an aware datetime (a naive one is read in ``tz``)."""
        if self.clocked_time.tzinfo is not None:
            return self.clocked_time
        return wall_to_instants(self.clocked_time, tz, both=False)[0].astimezone(tz)

    def next_after(self, moment: dt.datetime, tz: ZoneInfo) -> dt.datetime | None:
        """The fire time if it is after ``moment``, else None.

        Raises:
            ValueError: ``moment`` is naive.
        """
        when = self.at(tz)
        return when if when > aware(moment) else None

    def last_between(
        self, after: dt.datetime, until: dt.datetime, tz: ZoneInfo
    ) -> dt.datetime | None:
        """The fire time if it falls in ``(after, until]``, else None.

        Raises:
            ValueError: a naive datetime.
        """
        when = self.at(tz)
        return when if aware(after) < when <= aware(until) else None
