"""What every schedule is, and the one hard part they share: turning local wall-clock times
into instants across daylight-saving changes (the rules are in the package docstring)."""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celeriac.exceptions import ConfigurationError

UTC = dt.UTC
MINUTE = dt.timedelta(minutes=1)
TICK = dt.timedelta(microseconds=1)
FOLD_LOOKBACK = dt.timedelta(hours=3)  # longer than any repeated stretch of local time
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
WALL_EPOCH = dt.datetime(1970, 1, 1)
_MAX_STEPS = 100_000  # wall times tried by one search: far above any real schedule's need
_MAX_GAP_MINUTES = 3 * 24 * 60  # the longest skip on record is a day (Samoa, 2011)

NextWall = Callable[[dt.datetime], dt.datetime | None]


def timezone(name: str) -> ZoneInfo:
    """The zone named ``name`` (``'Europe/Berlin'``).

    Raises:
        ConfigurationError: no such zone (or no zone data: ``pip install tzdata``).
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"unknown time zone {name!r} (if the system has no zone files: pip install tzdata)"
        ) from exc


class Schedule(abc.ABC):
    """When something is due; see the docstring of ``celeriac.schedules``."""

    @abc.abstractmethod
    def next_after(self, moment: dt.datetime, tz: ZoneInfo) -> dt.datetime | None:
        """The first fire strictly after the aware ``moment``, in ``tz``; None if none is left.

        Raises:
            ValueError: ``moment`` is naive.
        """

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, read back by :func:`schedule_from_dict`."""

    def last_between(
        self, after: dt.datetime, until: dt.datetime, tz: ZoneInfo
    ) -> dt.datetime | None:
        """The latest fire in ``(after, until]``, or None.

        Raises:
            ValueError: a naive datetime.
        """
        # The recent past first: a dense schedule has its answer there, and a sparse one
        # (monthly) costs few steps when scanned from ``after``.
        recent = max(after, until - dt.timedelta(days=8))
        found = self._scan(recent, until, tz)
        return found if found is not None or recent == after else self._scan(after, recent, tz)

    def _scan(self, after: dt.datetime, until: dt.datetime, tz: ZoneInfo) -> dt.datetime | None:
        last, fire = None, self.next_after(after, tz)
        while fire is not None and fire <= until:
            last, fire = fire, self.next_after(fire, tz)
        return last

    def _identity(self) -> tuple[Any, ...]:
        return tuple(sorted((k, repr(v)) for k, v in self.to_dict().items()))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Schedule)
            and type(other) is type(self)
            and self._identity() == other._identity()
        )

    def __hash__(self) -> int:
        return hash(self._identity())


# -- wall time to instants ---------------------------------------------------------------------
def aware(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} is naive: give an aware datetime")
    return moment.astimezone(UTC)


def micros_since(origin: dt.datetime, moment: dt.datetime) -> int:
    return (moment - origin) // TICK


def wall_to_instants(wall: dt.datetime, tz: ZoneInfo, *, both: bool) -> list[dt.datetime]:
    """The UTC instants at which local time in ``tz`` reads ``wall`` (naive).

    ``both`` (every-hour schedules) counts elapsed time: a skipped wall time gives nothing, a
    repeated one both its occurrences. Otherwise a skipped time gives the end of the gap, and a
    repeated one its first occurrence.
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) != wall:
        return [] if both else [gap_end(wall, tz)]
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return [first, second] if both and second != first else [first]


def gap_end(wall: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The first whole minute of local time after the gap that ``wall`` falls into, in UTC."""
    step = wall.replace(second=0, microsecond=0)
    for _ in range(_MAX_GAP_MINUTES):
        step += MINUTE
        instant = step.replace(tzinfo=tz).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == step:
            return instant
    raise ConfigurationError(f"{wall} in {tz.key}: no valid local time within three days")


def next_instant(
    moment: dt.datetime, tz: ZoneInfo, next_wall: NextWall, *, both_folds: bool
) -> dt.datetime | None:
    """The first instant after ``moment`` whose local time ``next_wall`` accepts.

    Instants are compared in UTC: aware datetimes that share a zone compare by their wall time,
    which is wrong inside a repeated hour.
    """
    after = aware(moment)
    wall = after.astimezone(tz).replace(tzinfo=None)
    if (
        both_folds
        and (after + FOLD_LOOKBACK).astimezone(tz).utcoffset() != after.astimezone(tz).utcoffset()
    ):
        # Local time is about to repeat: an earlier wall time's second occurrence may come
        # before any later wall time.
        wall -= FOLD_LOOKBACK
    best: dt.datetime | None = None
    for _ in range(_MAX_STEPS):
        found = next_wall(wall)
        if found is None:
            break
        instants = wall_to_instants(found, tz, both=both_folds)
        for instant in instants:
            if instant > after and (best is None or instant < best):
                best = instant
        if instants and instants[0] > after:
            break
        wall = found + TICK
    return None if best is None else best.astimezone(tz)
