"""``Autoscaler``: ``--autoscale MAX,MIN`` grows the pool while work waits, and shrinks it back.

The pool starts with MIN processes (or threads). While every one is busy the worker fetches
for up to MAX (``headroom``), so it sees the work that waits; each turn of the main loop the
pool grows by what waits, up to MAX. Once some processes have been idle for
``AUTOSCALE_KEEPALIVE`` seconds (30 by default, as in Celery; the same environment variable),
the idle ones stop, down to MIN. A busy process is never stopped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from celeriac.exceptions import ConfigurationError
from celeriac.worker.options import WorkerOptions
from celeriac.worker.pool import ExecutionPool

log = logging.getLogger("celeriac.worker")
KEEPALIVE = 30.0  # seconds idle processes stay before the pool shrinks


def parse_autoscale(text: str) -> tuple[int, int]:
    """``'MAX,MIN'`` (or ``'MAX'``: MIN 0) as Celery's ``--autoscale`` takes it.

    Raises:
        ConfigurationError: not two counts, or MAX below MIN or 1.
    """
    high, _, low = text.partition(",")
    try:
        maximum, minimum = int(high), int(low or 0)
    except ValueError:
        raise ConfigurationError(
            f"bad --autoscale {text!r}: give MAX,MIN (at most, at least processes), as 10,3"
        ) from None
    if maximum < 1 or minimum < 0 or minimum > maximum:
        raise ConfigurationError(
            f"bad --autoscale {text!r}: MAX must be at least 1 and at least MIN (MAX,MIN)"
        )
    return maximum, minimum


def keepalive_from_env() -> float:
    """Celery's ``$AUTOSCALE_KEEPALIVE``: seconds before idle processes stop.

    Raises:
        ConfigurationError: not a number of seconds.
    """
    text = os.environ.get("AUTOSCALE_KEEPALIVE", "")
    try:
        return float(text) if text else KEEPALIVE
    except ValueError:
        raise ConfigurationError(f"bad AUTOSCALE_KEEPALIVE {text!r}: give seconds") from None


class Autoscaler:
    """Sizes ``pool`` between ``minimum`` and ``maximum``; see the module docstring.

    ``clock`` (``time.monotonic`` by default) lets tests move time by hand.
    """

    def __init__(
        self,
        pool: ExecutionPool,
        *,
        maximum: int,
        minimum: int,
        keepalive: float = KEEPALIVE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.maximum = maximum
        self.minimum = minimum
        self.keepalive = keepalive
        self._clock = clock
        self._busy_at = clock()  # the last time no process was idle

    def headroom(self) -> int:
        """How many more processes the pool may get: fetched for, to see what waits."""
        return max(0, self.maximum - self.pool.size())

    def scale(self, waiting: int) -> bool:
        """Grow by what ``waiting`` messages need, or shrink what stayed idle; True when the
        pool changed size."""
        now, size, free = self._clock(), self.pool.size(), self.pool.free_slots()
        if free < 1 or waiting > 0:
            self._busy_at = now
        grow = min(waiting - free, self.maximum - size)
        if grow > 0:
            self.pool.pool_grow(grow)
            log.info("pool grown to %d (--autoscale %d,%d)", size + grow, *self.limits)
            return True
        if size > self.minimum and free > 0 and now - self._busy_at >= self.keepalive:
            gone = self.pool.pool_shrink(min(free, size - self.minimum))
            if gone:
                log.info("pool shrunk to %d (--autoscale %d,%d)", size - gone, *self.limits)
            self._busy_at = now
            return gone > 0
        return False

    @property
    def limits(self) -> tuple[int, int]:
        """``(maximum, minimum)``."""
        return self.maximum, self.minimum


def autoscaler_for(pool: ExecutionPool, options: WorkerOptions) -> Autoscaler | None:
    """The autoscaler of ``--autoscale MAX,MIN`` (None without it).

    Raises:
        ConfigurationError: the solo pool, or a bad ``$AUTOSCALE_KEEPALIVE``.
    """
    if options.autoscale is None:
        return None
    if options.pool == "solo":
        raise ConfigurationError("--autoscale needs the prefork or threads pool, not solo")
    maximum, minimum = options.autoscale
    if options.concurrency:
        log.info("--autoscale %d,%d sets the pool size: -c is not used", maximum, minimum)
    keepalive = keepalive_from_env()
    return Autoscaler(pool, maximum=maximum, minimum=minimum, keepalive=keepalive)
