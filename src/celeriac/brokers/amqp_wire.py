"""How a celeriac message rides in an AMQP message, and what a delivery tells about it.

The body is the message's bytes as they are (the broker never parses them). The AMQP
properties carry what the broker needs: ``message_id`` is the tag, ``priority`` the priority
(cut to the queue's ``x-max-priority``), ``delivery_mode`` 2 (persistent); the headers ``c-q``
(the queue's name), ``c-n`` (how many times it was handed out before this copy was published),
``c-at`` (when it was published: oldest first across queues) and ``c-eta``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from celeriac.brokers.amqp_link import amqp

ATTEMPT = "c-n"
QUEUE = "c-q"
PUBLISHED = "c-at"
ETA = "c-eta"


def build(
    body: bytes,
    *,
    tag: str,
    queue: str,
    priority: int = 0,
    attempt: int = 0,
    eta: float | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """The AMQP message that carries ``body``."""
    headers: dict[str, Any] = {QUEUE: queue, ATTEMPT: attempt, PUBLISHED: time.time()}
    if eta is not None:
        headers[ETA] = float(eta)
    if extra:
        headers.update(extra)
    return amqp.Message(
        body,
        delivery_mode=2,
        priority=max(0, min(priority, 255)),
        message_id=tag,
        application_headers=headers,
    )


def headers_of(message: Any) -> dict[str, Any]:
    """The application headers of a received message ({} when it has none)."""
    headers = message.properties.get("application_headers")
    return dict(headers) if isinstance(headers, dict) else {}


def body_of(message: Any) -> bytes:
    """The body as bytes (py-amqp decodes it when a foreign producer set an encoding)."""
    body = message.body
    if isinstance(body, str):
        return body.encode(message.properties.get("content_encoding") or "utf-8")
    return bytes(body)


def priority_of(message: Any) -> int:
    """The message's priority (0 when it has none)."""
    return int(message.properties.get("priority") or 0)


def number(headers: dict[str, Any], name: str, default: float = 0.0) -> float:
    """A numeric header, or ``default`` when it is missing or not a number."""
    value = headers.get(name)
    return float(value) if isinstance(value, int | float) else default


@dataclass
class Held:
    """A delivery this broker holds: its lease, and the AMQP delivery behind it."""

    token: str
    deadline: float
    queue: str
    message: Any
    attempt: int
    since: float  # monotonic time of the AMQP delivery (see the consumer timeout)

    @property
    def delivery_tag(self) -> int:
        return int(self.message.delivery_info["delivery_tag"])
