"""The wire envelope of one task call.

A message is one line of JSON (the header: everything a worker's main process needs to route,
check, schedule and follow up a task) then a newline, then the body: the task's arguments,
serialized with the app's serializer. The main process reads only the header; the pool child
that runs the task decodes the body, so big arguments never cost the process that keeps the
leases. Brokers store these bytes as they are and never look inside.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Any

from celeriac.exceptions import MalformedMessage
from celeriac.serialization import JSON, Serializer

PROTOCOL = 1
_HEADER_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)
_REQUIRED = ("id", "task")


@dataclass(frozen=True)
class Message:
    """One task call as it travels through a broker.

    Times are epoch seconds. ``workflow`` carries what runs after this task (the rest of a
    chain, links, chord and DAG membership); its shape belongs to ``celeriac.canvas``.
    """

    id: str
    task: str
    body: bytes
    content_type: str = JSON
    queue: str = "celery"
    priority: int = 0
    eta: float | None = None
    expires: float | None = None
    retries: int = 0
    sent_at: float = field(default_factory=time.time)
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    ignore_result: bool = False
    time_limit: float | None = None
    soft_time_limit: float | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    workflow: dict[str, Any] = field(default_factory=dict)
    signature: str | None = None

    def header(self) -> dict[str, Any]:
        """The header fields as a JSON-ready dict (no body, no signature).

        Fields at their default value are left out, to keep messages small.
        """
        header: dict[str, Any] = {"v": PROTOCOL}
        for name, default in _HEADER_DEFAULTS:
            value = getattr(self, name)
            if value is not default and (type(value) is not type(default) or value != default):
                header[name] = value
        return header

    def encode(self) -> bytes:
        """Return the bytes a broker stores: header line, newline, body."""
        return self._encoded

    @functools.cached_property
    def _encoded(self) -> bytes:
        # Computed once: the size check and the broker both need the bytes.
        header = self.header()
        if self.signature is not None:
            header["sig"] = self.signature
        return _HEADER_ENCODER.encode(header).encode() + b"\n" + self.body

    def signed(self, serializer: Serializer) -> Message:
        """Return this message signed with the app's key (unchanged when signing is off)."""
        if not serializer.key:
            return self
        return replace(self, signature=serializer.sign(*self._signed_parts()))

    def verify(self, serializer: Serializer) -> None:
        """Check the signature against the app's key; no-op when signing is off.

        Raises:
            SignatureMismatch: signing is on and the signature is missing or wrong.
        """
        if serializer.key:
            serializer.verify(self.signature, *self._signed_parts())

    def _signed_parts(self) -> tuple[bytes, bytes]:
        canonical = json.dumps(self.header(), sort_keys=True, separators=(",", ":"))
        return canonical.encode(), self.body

    def arguments(self, serializer: Serializer) -> tuple[list[Any], dict[str, Any]]:
        """Decode the body into positional and keyword arguments.

        Raises:
            ContentDisallowed: the body's content type is not accepted by the app.
            MalformedMessage: the body does not decode to ``[args, kwargs]``.
        """
        return decode_arguments(serializer, self.content_type, self.body)

    @classmethod
    def decode(cls, raw: bytes) -> Message:
        """Parse bytes written by :meth:`encode`; the body stays serialized.

        Raises:
            MalformedMessage: the bytes are not a celeriac message.
        """
        line, sep, body = raw.partition(b"\n")
        if not sep:
            raise MalformedMessage("no header line: not a celeriac message")
        try:
            header = json.loads(line)
        except ValueError as exc:
            raise MalformedMessage(f"header is not JSON: {exc}") from exc
        if not isinstance(header, dict) or any(
            not isinstance(header.get(k), str) for k in _REQUIRED
        ):
            raise MalformedMessage("header must be an object with string 'id' and 'task'")
        version = header.pop("v", None)
        if version != PROTOCOL:
            raise MalformedMessage(f"unsupported message protocol {version!r}")
        signature = header.pop("sig", None)
        try:
            return cls(body=body, signature=signature, **header)
        except TypeError as exc:
            raise MalformedMessage(f"bad header: {exc}") from exc


_NO_DEFAULT = object()  # always written: required fields, and sent_at


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    return {} if f.default_factory is dict else _NO_DEFAULT


_HEADER_DEFAULTS: tuple[tuple[str, Any], ...] = tuple(
    (f.name, _default(f)) for f in fields(Message) if f.name not in ("body", "signature")
)


def decode_arguments(
    serializer: Serializer, content_type: str, body: bytes
) -> tuple[list[Any], dict[str, Any]]:
    """Decode a message body into positional and keyword arguments.

    Raises:
        ContentDisallowed: the app does not accept ``content_type``.
        MalformedMessage: the body does not decode to ``[args, kwargs]``.
    """
    payload = serializer.loads(content_type, body)
    if (
        not isinstance(payload, list | tuple)
        or len(payload) != 2
        or not isinstance(payload[0], list | tuple)
        or not isinstance(payload[1], dict)
    ):
        raise MalformedMessage("body must decode to [args, kwargs]")
    return list(payload[0]), dict(payload[1])


def peek_id(raw: bytes) -> str | None:
    """Best-effort task id of bytes that may be malformed, so a failure can still be recorded."""
    try:
        header = json.loads(raw.partition(b"\n")[0])
    except ValueError:
        return None
    value = header.get("id") if isinstance(header, dict) else None
    return value if isinstance(value, str) else None
