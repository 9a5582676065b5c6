"""The wire format of control commands: one JSON object per broadcast, and where replies go.

A command is ``{"op": NAME, ...arguments}``; ``destination`` (a list of node names, or absent:
every worker) says who must act, and ``reply_to`` (absent: no reply) names the reply set in the
result backend. A worker that replies stores its answer as a document under
``<reply_to>:<hostname>`` and then adds its hostname to the set ``<reply_to>``, so a client
that sees a hostname in the set finds the document there (``control/replies.py``).
"""

from __future__ import annotations

import json
import signal as signals
from typing import Any

from celeriac.exceptions import ConfigurationError

REVOCATION_TTL = 86400.0  # kept a day: a worker started later still knows the revocation
RATE_LIMIT_TTL = 3600.0  # read by running workers within a second: kept an hour, to be safe
COMMAND_TTL = 60.0  # other commands: read by running workers within a second
REPLY_TTL = 60.0  # seconds a reply is kept in the result backend
REPLY_PREFIX = "celeriac.control.reply:"


def signal_number(sig: str | int) -> int:
    """The number of a signal given by name (``'SIGKILL'``, ``'KILL'``) or number.

    Raises:
        ConfigurationError: no such signal.
    """
    if isinstance(sig, int):
        return sig
    if sig.isdigit():
        return int(sig)
    name = sig.upper() if sig.upper().startswith("SIG") else f"SIG{sig.upper()}"
    try:
        return int(getattr(signals, name))
    except AttributeError:
        raise ConfigurationError(f"unknown signal {sig!r}") from None


def encode_command(op: str, **arguments: Any) -> bytes:
    """The broadcast payload of one control command (arguments that are None are left out)."""
    fields = {k: v for k, v in arguments.items() if v is not None}
    return json.dumps({"op": op, **fields}).encode()


# Celery's argument names (``app.control.broadcast('rate_limit', arguments={'task_name': ...})``)
# and the ones celeriac's own calls send.
_CELERY_NAMES = {"rate_limit": {"task_name": "task", "rate_limit": "rate"}}


def decode_command(payload: bytes) -> dict[str, Any] | None:
    """A control command read from the broadcast log (None when it is not one), its arguments
    under celeriac's names (Celery's ``task_name`` and ``rate_limit`` of a rate limit, and a
    revocation's ``task_id``, are taken too)."""
    try:
        command = json.loads(payload)
    except ValueError:
        return None
    if not (isinstance(command, dict) and isinstance(command.get("op"), str)):
        return None
    for celery, ours in _CELERY_NAMES.get(command["op"], {}).items():
        if celery in command and ours not in command:
            command[ours] = command.pop(celery)
    if command["op"] == "revoke" and "ids" not in command and "task_id" in command:
        given = command.pop("task_id")
        command["ids"] = given if isinstance(given, list) else [given]
    return command


def for_node(command: dict[str, Any], hostname: str) -> bool:
    """True when ``command`` is meant for the worker ``hostname`` (no destination: all)."""
    destination = command.get("destination")
    return not isinstance(destination, list) or hostname in destination


def reply_document_key(reply_to: str, hostname: str) -> str:
    """Where the worker ``hostname`` stores its reply to the request ``reply_to``."""
    return f"{reply_to}:{hostname}"
