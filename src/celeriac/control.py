"""``Control``: commands to every worker (``app.control.revoke(...)``, ``rate_limit(...)``).

Commands travel as broadcasts: a log in the broker that every worker reads, kept for a day, so a
revocation reaches workers that start after it was sent, and no single worker's memory is the
only place it lives. The REVOKED state is also written to the result backend at once, so
``AsyncResult.state`` tells the truth before any worker has read the command. A rate limit
changes the workers running when it is sent (as in Celery); one started later keeps the limits
its tasks declare.
"""

from __future__ import annotations

import json
import logging
import signal as signals
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.exceptions import ConfigurationError, TaskRevokedError
from celeriac.rates import Rate, parse_rate
from celeriac.serialization import exception_to_dict, json_dumps

if TYPE_CHECKING:
    from celeriac.app import Celeriac

log = logging.getLogger("celeriac.control")
REVOCATION_TTL = 86400.0
RATE_LIMIT_TTL = 3600.0  # read by running workers within a second: kept an hour, to be safe


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

    def rate_limit(
        self,
        task_name: str,
        rate_limit: Rate,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
    ) -> list[dict[str, Any]] | None:
        """Change the rate limit of ``task_name`` in the running workers (those named in
        ``destination``, else all), as Celery's: ``'10/s'``, ``'100/m'``, ``'1000/h'``, a
        number a second, or None or 0 for none. Workers apply it within a second.

        Replies (``reply=True``) belong to the monitoring commands, not there yet: it then
        logs a warning and returns an empty list.

        Raises:
            ConfigurationError: not a rate.
            PublishError: the command could not be stored in the broker.
        """
        parse_rate(rate_limit)
        names = None if destination is None else [str(d) for d in destination]
        self.app.broker.broadcast(
            encode_command("rate_limit", task=task_name, rate=rate_limit, destination=names),
            ttl=RATE_LIMIT_TTL,
        )
        if not reply:
            return None
        log.warning(
            "control.rate_limit(reply=True): workers do not reply yet (the monitoring commands "
            "are not there yet); the limit was sent (timeout %s not used)",
            timeout,
        )
        return []
