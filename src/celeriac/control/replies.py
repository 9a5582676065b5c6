"""Replies to control commands, through the result backend: written by workers, gathered by
clients.

No broker needs a reply channel of its own: a worker stores its answer as a document and adds
its hostname to the request's set (both expiring after ``REPLY_TTL``); the client reads the set
every ``POLL`` seconds until ``timeout`` passes or ``limit`` workers answered. Replies come back
in Celery's shape: a list of ``{hostname: answer}``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from celeriac.backends.base import ResultBackend
from celeriac.control.commands import REPLY_PREFIX, REPLY_TTL, reply_document_key

POLL = 0.05  # seconds between reads of the reply set


def new_reply_key() -> str:
    """A fresh name for the replies to one request."""
    return REPLY_PREFIX + uuid.uuid4().hex


def write_reply(backend: ResultBackend, reply_to: str, hostname: str, answer: Any) -> None:
    """Store ``hostname``'s ``answer`` (JSON-ready) to the request ``reply_to``.

    Raises:
        BackendError: the backend cannot be reached.
    """
    document = {"hostname": hostname, "reply": answer}
    backend.put_document(reply_document_key(reply_to, hostname), document, expires=REPLY_TTL)
    backend.add_to_set(reply_to, hostname, expires=REPLY_TTL)


def gather(
    backend: ResultBackend,
    reply_to: str,
    *,
    timeout: float,
    limit: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """The replies to ``reply_to`` that came within ``timeout`` seconds (fewer once ``limit``
    came), in the order they were seen.

    Raises:
        BackendError: the backend cannot be reached.
    """
    deadline = clock() + timeout
    seen: set[str] = set()
    replies: list[dict[str, Any]] = []
    while True:
        for hostname in sorted(backend.set_members(reply_to) - seen):
            document = backend.get_document(reply_document_key(reply_to, hostname))
            if document is not None:
                seen.add(hostname)
                replies.append({hostname: document.get("reply")})
        remaining = deadline - clock()
        if (limit is not None and len(replies) >= limit) or remaining <= 0:
            return replies
        sleep(min(POLL, remaining))
