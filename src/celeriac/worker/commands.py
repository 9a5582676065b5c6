"""Reading control commands (revocations) from the broker's broadcast log.

At start the worker reads every command still kept, so it knows the revocations sent before it
started; after that it reads only what is new. It remembers the most recent 100,000 revoked ids,
as Celery does, so the set cannot grow without bound.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass

from celeriac.brokers.base import Broker
from celeriac.control import decode_command
from celeriac.exceptions import BrokerError

log = logging.getLogger("celeriac.worker")
REMEMBERED = 100_000


@dataclass(frozen=True)
class Termination:
    """A running task to kill, and the signal to kill it with."""

    task_id: str
    signum: int


class CommandReader:
    """Follows the broadcast log; answers "is this task revoked?"."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._cursor: str | None = None
        self._revoked: collections.OrderedDict[str, None] = collections.OrderedDict()

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._revoked

    def refresh(self) -> list[Termination]:
        """Read new commands; return the terminations they ask for."""
        try:
            payloads, self._cursor = self.broker.read_broadcasts(self._cursor)
        except BrokerError as exc:
            log.warning("cannot read control commands: %s", exc)
            return []
        terminations = []
        for payload in payloads:
            command = decode_command(payload)
            if command is None or command["op"] != "revoke":
                continue
            for task_id in command.get("ids", []):
                self._remember(str(task_id))
                if command.get("terminate"):
                    terminations.append(Termination(str(task_id), int(command.get("signal", 15))))
        return terminations

    def _remember(self, task_id: str) -> None:
        self._revoked[task_id] = None
        self._revoked.move_to_end(task_id)
        while len(self._revoked) > REMEMBERED:
            self._revoked.popitem(last=False)
