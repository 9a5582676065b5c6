"""``Control``: commands to every worker (``app.control.revoke(...)``).

Commands travel as broadcasts: a log in the broker that every worker reads, kept for a day, so a
revocation reaches workers that start after it was sent, and no single worker's memory is the
only place it lives. The REVOKED state is also written to the result backend at once, so
``AsyncResult.state`` tells the truth before any worker has read the command.
"""

from __future__ import annotations

import json
import signal as signals
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.exceptions import ConfigurationError, TaskRevokedError
from celeriac.serialization import exception_to_dict, json_dumps

if TYPE_CHECKING:
    from celeriac.app import Celeriac

REVOCATION_TTL = 86400.0


def signal_number(sig: str | int) -> int:
    """The number of a signal given by name (``'SIGKILL'``, ``'KILL'``) or number.

    Raises:
        ConfigurationError: no such signal.
    """
    if isinstance(sig, int):
        return sig
    name = sig.upper() if sig.upper().startswith("SIG") else f"SIG{sig.upper()}"
    try:
        return int(getattr(signals, name))
    except AttributeError:
        raise ConfigurationError(f"unknown signal {sig!r}") from None


def encode_command(op: str, **arguments: Any) -> bytes:
    """The broadcast payload of one control command."""
    return json.dumps({"op": op, **arguments}).encode()


def decode_command(payload: bytes) -> dict[str, Any] | None:
    """A control command read from the broadcast log (None when it is not one)."""
    try:
        command = json.loads(payload)
    except ValueError:
        return None
    return command if isinstance(command, dict) and isinstance(command.get("op"), str) else None


class Control:
    """Sends commands to the workers of an app."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app

    def revoke(
        self,
        task_id: str | Sequence[str],
        *,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
    ) -> None:
        """Revoke tasks: they will not run; with ``terminate``, a running one is killed.

        Raises:
            ConfigurationError: an unknown signal.
            PublishError: the command could not be stored in the broker.
        """
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        number = signal_number(signal)
        reason = json_dumps(exception_to_dict(TaskRevokedError("revoked")))
        now = time.time()
        self.app.backend.store_many(
            [ResultRecord(i, states.REVOKED, reason, date_done=now) for i in ids],
            expires=self.app.conf.seconds("result_expires"),
        )
        self.app.broker.broadcast(
            encode_command("revoke", ids=ids, terminate=terminate, signal=number),
            ttl=REVOCATION_TTL,
        )
