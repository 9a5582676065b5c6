"""Reading control commands (revocations, rate limits, the rest of ``app.control``) from the
broker's broadcast log.

At start the worker reads every command still kept, so it knows the revocations sent before it
started; after that it reads only what is new. Every other command, as in Celery, acts on the
workers running when it is sent (those it names, or all): a worker that starts later keeps the
limits its tasks declare, and does not answer old pings. Those commands are handed, as read, to
``worker/answers.py`` (``take_requests``), which acts and replies. It remembers the most
recent 100,000 revoked ids, as Celery does, so the set cannot grow without bound. While the
broker cannot be reached, the reads back off (0.25 s doubling to 2 s, one log line a try), as
fetching does.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celeriac.brokers.base import Broker
from celeriac.control.commands import decode_command, for_node
from celeriac.exceptions import BrokerError
from celeriac.rates import Rate

log = logging.getLogger("celeriac.worker")
REMEMBERED = 100_000
FIRST_BACKOFF, MAX_BACKOFF = 0.25, 2.0  # seconds between reads while the broker is unreachable


@dataclass(frozen=True)
class Termination:
    """A running task to kill, and the signal to kill it with."""

    task_id: str
    signum: int


@dataclass(frozen=True)
class RateChange:
    """A task's new rate limit (``app.control.rate_limit``)."""

    task: str
    rate: Rate


class CommandReader:
    """Follows the broadcast log; answers "is this task revoked?".

    ``hostname`` is this worker's node name, for commands sent to named workers only
    (``destination``); ``clock`` (``time.monotonic`` by default) times the back-off; tests
    pass a fake one.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        hostname: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.broker = broker
        self.hostname = hostname
        self._rate_changes: list[RateChange] = []
        self._requests: list[dict[str, Any]] = []
        self._clock = clock
        self._cursor: str | None = None
        self._revoked: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._backoff = FIRST_BACKOFF
        self._retry_at = float("-inf")

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._revoked

    def refresh(self) -> list[Termination]:
        """Read new commands, unless backing off after a failed read; return the terminations
        they ask for. A failure is logged, not raised."""
        now = self._clock()
        if now < self._retry_at:
            return []
        try:
            terminations = self.read()
        except BrokerError as exc:
            log.warning("cannot read control commands: %s (retrying in %gs)", exc, self._backoff)
            self._retry_at = now + self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            return []
        self._backoff, self._retry_at = FIRST_BACKOFF, float("-inf")
        return terminations

    def read(self) -> list[Termination]:
        """Read new commands now; return the terminations they ask for.

        Raises:
            BrokerError: the broker cannot be reached.
        """
        history = self._cursor is None  # sent before this worker started
        payloads, self._cursor = self.broker.read_broadcasts(self._cursor)
        terminations = []
        for payload in payloads:
            command = decode_command(payload)
            if command is None:
                continue
            mine = not history and for_node(command, self.hostname)
            if mine and (command["op"] != "revoke" or command.get("reply_to")):
                self._requests.append(command)
            if command["op"] == "rate_limit" and mine:
                if not isinstance(command.get("task"), str):
                    continue
                self._rate_changes.append(RateChange(str(command["task"]), command.get("rate")))
            if command["op"] != "revoke":
                continue
            for task_id in command.get("ids", []):
                self._remember(str(task_id))
                if command.get("terminate"):
                    terminations.append(Termination(str(task_id), int(command.get("signal", 15))))
        return terminations

    def take_requests(self) -> list[dict[str, Any]]:
        """The commands for this worker read since the last call (all but the revocations that
        ask for no reply), oldest first, for ``worker/answers.py``."""
        taken, self._requests = self._requests, []
        return taken

    @property
    def revoked(self) -> list[str]:
        """The revoked ids remembered, oldest first."""
        return list(self._revoked)

    def take_rate_limits(self) -> list[RateChange]:
        """The rate limits read since the last call, oldest first."""
        taken, self._rate_changes = self._rate_changes, []
        return taken

    def _remember(self, task_id: str) -> None:
        self._revoked[task_id] = None
        self._revoked.move_to_end(task_id)
        while len(self._revoked) > REMEMBERED:
            self._revoked.popitem(last=False)
