"""Rate limits: Celery's rate strings, and the token bucket a worker keeps per task.

A rate limit is per worker, as in Celery: ``@app.task(rate_limit='10/s')`` lets each worker
start at most ten calls of that task a second. A rate is ``'N/s'``, ``'N/m'``, ``'N/h'`` or a
bare number (per second); None, 0 and ``''`` mean no limit. The bucket holds one token, as
Celery's does, so calls start evenly spaced rather than in bursts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from celeriac.exceptions import ConfigurationError

Rate = str | int | float | None
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}
_EPSILON = 1e-9  # a token due "now" is not missed by a rounding error


def parse_rate(value: Rate) -> float | None:
    """Tokens a second for a Celery rate (``'10/s'``, ``'100/m'``, ``'1000/h'``, ``5``); None
    when it sets no limit (None, 0, ``''``).

    Raises:
        ConfigurationError: not a rate.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigurationError(f"bad rate limit {value!r}: give 'N/s', 'N/m', 'N/h' or N")
    count, per = (value, "s") if not isinstance(value, str) else _split(value)
    try:
        number = float(count)
    except ValueError:
        number = -1.0
    if per not in _PER or not number >= 0 or number == float("inf"):
        raise ConfigurationError(
            f"bad rate limit {value!r}: give 'N/s', 'N/m' or 'N/h' (N a number, 0 for none), "
            "or N (per second)"
        )
    return number / _PER[per] if number else None


def _split(text: str) -> tuple[str, str]:
    count, _, per = text.strip().partition("/")
    return count.strip(), per.strip() or "s"


class TokenBucket:
    """Tokens that come back at ``rate`` a second, up to ``capacity``; a call takes one.

    ``clock`` (``time.monotonic`` by default) lets tests move time by hand.
    """

    def __init__(
        self,
        rate: float,
        *,
        capacity: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity  # full at first: the first call starts at once
        self._at = clock()

    def _fill(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens + _EPSILON

    def ready(self) -> int:
        """How many calls could start now."""
        return int(self._fill())

    def take(self) -> bool:
        """Take a token if one is there; False (and nothing taken) if none is."""
        if self._fill() < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def wait_time(self) -> float:
        """Seconds until a token is there (0 when one is)."""
        missing = 1.0 - self._fill()
        return max(0.0, missing / self.rate)
