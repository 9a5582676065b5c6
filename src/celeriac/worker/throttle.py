"""``Throttle``: the messages of rate-limited tasks that wait for a token, task by task.

Celery's ``rate_limit`` is per worker: each task with a limit has a token bucket here
(``rates.TokenBucket``). A message of such a task that finds no token leaves the dispatcher's
line and waits in its task's own line, still held under its renewed lease, so the messages of
other tasks go on past it; the main loop's poll wakes when the next token is due. The limit of
a task is its ``rate_limit``, else ``task_default_rate_limit``; ``app.control.rate_limit``
changes it at run time, and ``worker_disable_rate_limits`` turns every limit off.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from celeriac.rates import Rate, TokenBucket, parse_rate
from celeriac.worker.held import Held

if TYPE_CHECKING:
    from celeriac.app import Celeriac

log = logging.getLogger("celeriac.worker")
HOLD = 100  # messages waiting for tokens that do not stop the worker from fetching more


class Throttle:
    """Token buckets and the lines of messages waiting for them; see the module docstring.

    ``rate_of`` gives a task's own limit (``Task.rate_limit``), ``default`` is the app's
    ``task_default_rate_limit``.
    """

    def __init__(self, rate_of: Callable[[str], Rate], default: Rate, *, disabled: bool) -> None:
        self._rate_of = rate_of
        self._default = default
        self.disabled = disabled
        self._overrides: dict[str, float | None] = {}
        self._buckets: dict[str, TokenBucket | None] = {}
        self.lines: dict[str, deque[Held]] = {}
        self.count = 0  # messages in every line

    def bucket(self, task: str) -> TokenBucket | None:
        """The bucket of ``task`` (None: it has no limit here)."""
        if task in self._buckets:
            return self._buckets[task]
        rate = self._rate(task)
        bucket = self._buckets[task] = None if rate is None else TokenBucket(rate)
        return bucket

    def _rate(self, task: str) -> float | None:
        if self.disabled:
            return None
        if task in self._overrides:
            return self._overrides[task]
        own = self._rate_of(task)
        return parse_rate(own if own is not None else self._default)

    def set_rate(self, task: str, rate: Rate) -> None:
        """Change the limit of ``task`` (``app.control.rate_limit``); its waiting messages
        then wait for the new bucket's tokens, or for none.

        Raises:
            ConfigurationError: not a rate.
        """
        self._overrides[task] = parse_rate(rate)
        self._buckets.pop(task, None)

    def must_wait(self, task: str, bucket: TokenBucket) -> bool:
        """Whether a message of ``task`` waits: no token now, or others of it wait already."""
        return bool(self.lines.get(task)) or bucket.wait_time() > 0

    def hold(self, task: str, held: Held) -> None:
        """Put ``held`` at the end of its task's line."""
        self.lines.setdefault(task, deque()).append(held)
        self.count += 1

    def release(self, slots: int) -> list[Held]:
        """The messages that may start now (a token each, taken), at most ``slots``."""
        released: list[Held] = []
        for task, line in list(self.lines.items()):
            bucket = self.bucket(task)
            while line and len(released) < slots and (bucket is None or bucket.take()):
                released.append(line.popleft())
            if not line:
                del self.lines[task]
        self.count -= len(released)
        return released

    def wait_time(self) -> float | None:
        """Seconds until the next waiting message has a token (None: nothing waits)."""
        waits = [
            0.0 if (bucket := self.bucket(task)) is None else bucket.wait_time()
            for task in self.lines
        ]
        return min(waits, default=None)

    def take_all(self) -> list[Held]:
        """Every waiting message, out of its line (the worker is stopping)."""
        taken = [held for line in self.lines.values() for held in line]
        self.lines.clear()
        self.count = 0
        return taken


def throttle_for(app: Celeriac) -> Throttle:
    """The throttle of a worker for ``app``: each task's own limit, else
    ``task_default_rate_limit`` (checked now), unless ``worker_disable_rate_limits``.

    Raises:
        ConfigurationError: a bad ``task_default_rate_limit``.
    """
    conf, tasks = app.conf, app.tasks
    default: Rate = conf.task_default_rate_limit
    parse_rate(default)
    disabled = bool(conf.worker_disable_rate_limits)
    if disabled:
        log.info("rate limits are off in this worker (worker_disable_rate_limits)")

    def rate_of(name: str) -> Rate:
        return getattr(tasks.get(name), "rate_limit", None)

    return Throttle(rate_of, default, disabled=disabled)
