"""Remote control and inspection of workers: ``Control`` (write) and ``Inspect`` (read).

``app.control`` is a ``Control``; ``app.control.inspect()`` an ``Inspect``. The wire format is
in ``commands.py``, the reply channel (through the result backend) in ``replies.py``; the
worker's side is ``celeriac.worker.commands`` (reading) and ``celeriac.worker.answers``.
"""

from __future__ import annotations

from celeriac.control.commands import (
    COMMAND_TTL,
    RATE_LIMIT_TTL,
    REVOCATION_TTL,
    decode_command,
    encode_command,
    signal_number,
)
from celeriac.control.inspect import Inspect
from celeriac.control.remote import Control

__all__ = [
    "COMMAND_TTL",
    "RATE_LIMIT_TTL",
    "REVOCATION_TTL",
    "Control",
    "Inspect",
    "decode_command",
    "encode_command",
    "signal_number",
]
