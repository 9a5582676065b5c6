"""``solar``: a schedule that fires at a sun event (sunrise, dusk...) at a place, as Celery's.

The times come from the ``astral`` library (``pip install 'celeriac[solar]'``), imported when a
solar schedule is first asked for a time. Where the sun does not reach an event on a day
(midnight sun, polar night), that day has no fire; the schedule fires on the next day that
has the event, so beat never stops on it. Times are computed at sea level and may differ from
Celery's (which uses ``ephem``) by a minute or so.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from celeriac.exceptions import ConfigurationError
from celeriac.schedules.base import UTC, Schedule

# Celery's events: (astral function, the sun's depression below the horizon in degrees)
EVENTS: dict[str, tuple[str, float | None]] = {
    "dawn_astronomical": ("dawn", 18.0),
    "dawn_nautical": ("dawn", 12.0),
    "dawn_civil": ("dawn", 6.0),
    "sunrise": ("sunrise", None),
    "solar_noon": ("noon", None),
    "sunset": ("sunset", None),
    "dusk_civil": ("dusk", 6.0),
    "dusk_nautical": ("dusk", 12.0),
    "dusk_astronomical": ("dusk", 18.0),
}
SEARCH_DAYS = 370  # a year and a bit: every event that happens at a place happens in it
INSTALL = "solar schedules need the astral library: pip install 'celeriac[solar]'"


def _astral() -> Any:
    """The ``astral.sun`` module and ``Observer`` class.

    Raises:
        ConfigurationError: astral is not installed, naming the extra to install.
    """
    try:
        from astral import Observer, sun
    except ImportError as exc:
        raise ConfigurationError(INSTALL) from exc
    return Observer, sun


class solar(Schedule):
    """Fires at ``event`` (one of ``EVENTS``) at latitude ``lat`` and longitude ``lon``
    (degrees; north and east positive).

    Raises:
        ConfigurationError: an unknown event, or a latitude or longitude out of range.
    """

    def __init__(self, event: str, lat: float, lon: float) -> None:
        if event not in EVENTS:
            raise ConfigurationError(
                f"unknown solar event {event!r}: choose from {', '.join(EVENTS)}"
            )
        if not -90 <= float(lat) <= 90:
            raise ConfigurationError(f"solar latitude must be from -90 to 90, not {lat!r}")
        if not -180 <= float(lon) <= 180:
            raise ConfigurationError(f"solar longitude must be from -180 to 180, not {lon!r}")
        self.event, self.lat, self.lon = event, float(lat), float(lon)

    def __repr__(self) -> str:
        return f"<solar: {self.event} at latitude {self.lat}, longitude {self.lon}>"

    def on(self, day: dt.date) -> dt.datetime | None:
        """The event's time (UTC) on ``day`` (a UTC date), or None when the sun does not reach
        it there that day.

        Raises:
            ConfigurationError: astral is not installed.
        """
        observer_class, sun = _astral()
        observer = observer_class(self.lat, self.lon)
        name, depression = EVENTS[self.event]
        extra = {} if depression is None else {"depression": depression}
        try:
            when: dt.datetime = getattr(sun, name)(observer, day, tzinfo=UTC, **extra)
        except ValueError:  # midnight sun or polar night: no such event that day
            return None
        return when.astimezone(UTC)

    def next_after(self, moment: dt.datetime, tz: ZoneInfo) -> dt.datetime | None:
        """The first time of the event strictly after ``moment`` (the zone plays no part: the
        sun keeps its own time); None if it does not happen within a year.

        Raises:
            ValueError: ``moment`` is naive.
            ConfigurationError: astral is not installed.
        """
        if moment.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        start = moment.astimezone(UTC).date() - dt.timedelta(days=1)
        for offset in range(SEARCH_DAYS):
            when = self.on(start + dt.timedelta(days=offset))
            if when is not None and when > moment:
                return when
        return None

    def to_dict(self) -> dict[str, Any]:
        """``{'type': 'solar', 'event': ..., 'lat': ..., 'lon': ...}``."""
        return {"type": "solar", "event": self.event, "lat": self.lat, "lon": self.lon}


__all__ = ["EVENTS", "solar"]
