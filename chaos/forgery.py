"""Malformed and forged messages, as bytes a broker stores: what a buggy or hostile client
could write. ``RawMessage`` hands such bytes to ``Broker.publish`` as they are."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from celeriac.message import Message
from celeriac.serialization import Serializer
from chaos.tasks import NOTE


@dataclass(frozen=True)
class RawMessage(Message):
    """Bytes published unchanged: a broker reads a message's queue, priority and ETA (left at
    their defaults here) and stores ``encode()``."""

    raw: bytes = b""

    def encode(self) -> bytes:
        """The bytes as given."""
        return self.raw


@dataclass(frozen=True)
class Injected:
    """One bad message: its name in the report, its bytes, and the task id it carries (None
    when none can be read from it)."""

    name: str
    raw: bytes
    task_id: str | None

    def message(self) -> RawMessage:
        """What to hand to ``Broker.publish``."""
        return RawMessage(id=self.task_id or "-", task=NOTE, body=b"", raw=self.raw)


def _call_body(serializer: Serializer, seq: int) -> bytes:
    return serializer.dumps([[seq, 0.0], {}])


def _signed(serializer: Serializer, **fields: Any) -> bytes:
    """A message signed with the app's key, its header fields as given (of any type)."""
    return Message(**fields).signed(serializer).encode()


def wrong_types(serializer: Serializer) -> list[Injected]:
    """Correctly signed messages with one header field of the wrong type each."""
    bad: dict[str, Any] = {
        "expires": "soon",
        "eta": "tomorrow",
        "retries": "many",
        "priority": "high",
        "time_limit": [1],
        "headers": ["not", "a", "dict"],
        "workflow": "not a dict",
    }
    found = []
    for field, value in bad.items():
        task_id = str(uuid.uuid4())
        fields = {"id": task_id, "task": NOTE, "body": _call_body(serializer, -1), field: value}
        found.append(Injected(f"{field} of the wrong type", _signed(serializer, **fields), task_id))
    return found


def garbage(serializer: Serializer, *, depth: int, megabytes: int) -> list[Injected]:
    """Bytes that are no message, a truncated one, a header nested ``depth`` deep, and a
    signed message ``megabytes`` MB long."""
    cut_id = str(uuid.uuid4())
    whole = _signed(serializer, id=cut_id, task=NOTE, body=_call_body(serializer, -1))
    header = whole.partition(b"\n")[0]
    deep_id = str(uuid.uuid4())
    nested = b"[" * depth + b"]" * depth
    deep = b'{"v":1,"id":"%s","task":"%s","sent_at":%f,"headers":{"deep":%s}}\n[[],{}]' % (
        deep_id.encode(),
        NOTE.encode(),
        time.time(),
        nested,
    )
    big_id = str(uuid.uuid4())
    big_body = b'[["' + b"x" * (megabytes * 1024 * 1024) + b'"],{}]'
    return [
        Injected("not JSON", b"this is not a message\n[[], {}]", None),
        Injected("truncated in the header", header[: len(header) * 2 // 3], None),
        Injected("truncated in the body", whole[:-4], cut_id),
        Injected(f"header nested {depth:,} deep", deep, deep_id),
        Injected(
            f"{megabytes} MB body",
            _signed(serializer, id=big_id, task=NOTE, body=big_body),
            big_id,
        ),
    ]


def unsigned(serializer: Serializer) -> Injected:
    """A sound message for a fresh id, with no signature, while the app signs."""
    task_id = str(uuid.uuid4())
    raw = Message(id=task_id, task=NOTE, body=_call_body(serializer, -1)).encode()
    return Injected("unsigned", raw, task_id)


def forged(serializer: Serializer, task_id: str) -> Injected:
    """A message for ``task_id`` (a real task's, still pending) signed with another key."""
    other = Serializer(key=b"not the app's key")
    raw = Message(id=task_id, task=NOTE, body=_call_body(serializer, -1)).signed(other).encode()
    return Injected("forged, reusing a pending task's id", raw, task_id)
