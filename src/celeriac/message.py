"""The wire envelope of one task call.

A message is one line of JSON (the header: everything a worker's main process needs to route,
check, schedule and follow up a task) then a newline, then the body: the task's arguments,
serialized with the app's serializer. The main process reads only the header; the pool child
that runs the task decodes the body, so big arguments never cost the process that keeps the
leases. Brokers store these bytes as they are and never look inside.

With ``compression`` (``'zlib'``, ``'gzip'``, ``'bzip2'``, ``'lzma'``) the body is sent
compressed and the header says how; a ``Message`` always holds the body uncompressed, and a
decoded one gets it back within ``message_max_bytes`` (``celeriac.compression``): the worker's
main process decompresses it, so that a compression bomb is refused there, as a bad message.

When the app signs (``security_key``), one more line comes first: ``sig <HMAC-SHA256 in hex>``
of every byte after it, the body as sent (compressed) included. A worker checks it on the raw
bytes (:func:`open_message`) before it parses or decompresses anything, so a forged message
costs one HMAC and is never parsed. A decoded message keeps the bytes it came from, so handing
it back re-sends exactly what was signed.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import time
from collections.abc import Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from json.encoder import encode_basestring_ascii
from typing import Any

import orjson

from celeriac.compression import DEFAULT_MAX_BYTES, compress, decompress
from celeriac.exceptions import MalformedMessage, SignatureMismatch
from celeriac.headers import check_header, encode_header
from celeriac.serialization import JSON, Serializer, parse_json

PROTOCOL = 1
SIGNATURE_LINE = b"sig "
_HEADER_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class Message:
    """One task call as it travels through a broker.

    Times are epoch seconds. ``workflow`` carries what runs after this task (the rest of a
    chain, links, chord and DAG membership); its shape belongs to ``celeriac.canvas``.
    ``body`` is the serialized arguments, uncompressed; ``compression`` says how the bytes
    that travel compress it.
    """

    id: str
    task: str
    body: bytes
    content_type: str = JSON
    queue: str = "celeriac"
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
    compression: str | None = None
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
        """Return the bytes a broker stores: the signature line when signed, the header line, a
        newline, the body."""
        return self._encoded

    @functools.cached_property
    def _encoded(self) -> bytes:
        # Computed once: the size check and the broker both need the bytes.
        if self.signature is None:
            return self._unsigned
        return SIGNATURE_LINE + self.signature.encode("ascii") + b"\n" + self._unsigned

    @functools.cached_property
    def _unsigned(self) -> bytes:
        """What the signature covers: the header line, a newline and the body as sent."""
        body = self.body if self.compression is None else compress(self.body, self.compression)
        return encode_header(self.header()) + b"\n" + body

    def signed(self, serializer: Serializer) -> Message:
        """Return this message signed with the app's key (unchanged when signing is off)."""
        if not serializer.key:
            return self
        signed = replace(self, signature=serializer.sign(self._unsigned))
        signed.__dict__["_unsigned"] = self._unsigned  # the same header: encode it once
        return signed

    def verify(self, serializer: Serializer) -> None:
        """Check the signature against the app's key; no-op when signing is off.

        Raises:
            SignatureMismatch: signing is on and the signature is missing or wrong.
        """
        if serializer.key:
            serializer.verify(self.signature, self._unsigned)

    def arguments(self, serializer: Serializer) -> tuple[list[Any], dict[str, Any]]:
        """Decode the body into positional and keyword arguments.

        Raises:
            ContentDisallowed: the body's content type is not accepted by the app.
            MalformedMessage: the body does not decode to ``[args, kwargs]``.
        """
        return decode_arguments(serializer, self.content_type, self.body)

    @classmethod
    def decode(
        cls, raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, checked: bool = False
    ) -> Message:
        """Parse bytes written by :meth:`encode` (the body stays serialized, but not
        compressed), checking every header field against the schema (``celeriac.headers``),
        unless ``checked`` says these very bytes passed that check already (a pool child
        decoding what the worker's main process decoded and checked: its intake). It does
        not check the signature: :func:`open_message` does, before parsing.

        Raises:
            MalformedMessage: the bytes are not a celeriac message (the error names the field),
                or the body does not decompress within ``max_bytes``.
        """
        signature, unsigned = _split_signature(raw)
        line, sep, body = unsigned.partition(b"\n")
        if not sep:
            raise MalformedMessage("no header line: not a celeriac message")
        header = _parse_header(line)
        if not checked:
            check_header(header)
        if header.pop("v", None) != PROTOCOL:
            raise MalformedMessage(f"unsupported message protocol (this worker reads {PROTOCOL})")
        compression = header.get("compression")
        if compression is not None:
            body = decompress(body, compression, max_bytes=max_bytes)
        message = _from_header(cls, header, body, signature)
        # It re-encodes to the bytes it came from: a signature stays valid when it is handed back.
        message.__dict__["_encoded"] = raw
        message.__dict__["_unsigned"] = unsigned
        return message


def open_message(
    raw: bytes, serializer: Serializer, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Message:
    """The message in ``raw`` as a worker takes it: when the app signs, the signature checked on
    the raw bytes first, then the header parsed and checked, then a compressed body
    decompressed, to ``max_bytes`` at most (:meth:`Message.decode`).

    Raises:
        SignatureMismatch: signing is on and the signature is missing or wrong.
        MalformedMessage: the bytes are not a celeriac message, or the body does not
            decompress within ``max_bytes``.
    """
    if serializer.key:
        signature, unsigned = _split_signature(raw)
        if signature is None:
            raise SignatureMismatch("message is not signed, and this app signs its messages")
        serializer.verify(signature, unsigned)
    return Message.decode(raw, max_bytes=max_bytes)


def _split_signature(raw: bytes) -> tuple[str | None, bytes]:
    """The signature (None when the message is not signed) and the bytes it covers."""
    if not raw.startswith(SIGNATURE_LINE):
        return None, raw
    line, sep, unsigned = raw.partition(b"\n")
    signature = line[len(SIGNATURE_LINE) :]
    if not sep or len(signature) != 64 or not signature.isalnum():
        raise MalformedMessage("the signature line is not 'sig <64 hex digits>'")
    return signature.decode("ascii"), unsigned


def _parse_header(line: bytes) -> dict[str, Any]:
    try:
        header = parse_json(line)
    except RecursionError:
        raise MalformedMessage("header is nested too deep") from None
    except ValueError as exc:
        raise MalformedMessage(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise MalformedMessage("header must be a JSON object")
    return header


_NO_DEFAULT = object()  # always written: required fields, and sent_at


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    return {} if f.default_factory is dict else _NO_DEFAULT


_HEADER_DEFAULTS: tuple[tuple[str, Any], ...] = tuple(
    (f.name, _default(f)) for f in fields(Message) if f.name not in ("body", "signature")
)


_FIELD_NAMES = tuple(f.name for f in fields(Message))
# What a decoded message holds for a field its header leaves out (headers, workflow and
# sent_at are made fresh for each: see _from_header).
_DECODED_DEFAULTS: dict[str, Any] = {
    name: default for name, default in _HEADER_DEFAULTS if default is not _NO_DEFAULT
}
del _DECODED_DEFAULTS["headers"], _DECODED_DEFAULTS["workflow"]


def _from_header(
    cls: type[Message], header: dict[str, Any], body: bytes, signature: str | None
) -> Message:
    """The message of a checked header: what ``cls(**header)`` makes, without the frozen
    dataclass's ``__init__``, which sets one field at a time through ``object.__setattr__``
    (most of a decode's cost: the worker's main process decodes every message it takes)."""
    message = object.__new__(cls)
    values = {**_DECODED_DEFAULTS, **header, "body": body, "signature": signature}
    if "headers" not in header:
        values["headers"] = {}
    if "workflow" not in header:
        values["workflow"] = {}
    if "sent_at" not in header:
        values["sent_at"] = time.time()
    message.__dict__.update(values)
    return message


class MessageTemplate:
    """Many messages that differ only in their id, body and times (a group's members, the
    calls of one task): the fields they share taken once, and their header line encoded once.

    ``template`` is one of them, built at ``template.sent_at``; ``countdown`` (seconds) makes
    each one's ``eta`` that long after its own ``sent_at``, ``expires_after`` its ``expires``.
    A message is made with its bytes: the template's header line with its id and times
    spliced in, the bytes :meth:`Message.encode` would write; :meth:`seal`, after the
    middleware's ``before_publish``, drops them if a middleware changed its headers or
    workflow, so that it encodes as any message does.
    """

    def __init__(
        self,
        template: Message,
        *,
        countdown: float | None = None,
        expires_after: float | None = None,
    ) -> None:
        self._fields = {name: getattr(template, name) for name in _FIELD_NAMES}
        self._headers = template.headers
        self._workflow = template.workflow
        self._countdown = countdown
        self._expires_after = expires_after
        self._parts: list[bytes] = []
        self._pairs: tuple[tuple[str, bytes], ...] = ()  # (a varying field, the bytes after it)
        self._id_then_time: tuple[bytes, bytes, bytes] | None = None
        self._splice(template)

    def _splice(self, template: Message) -> None:
        """Cut the template's header line at the values that change from message to message.

        Each such value is written as a random token first, so that it cannot be mistaken
        for anything else in the line; a line where a token is not found once stays unused.
        """
        varying = ["id", "sent_at"]
        if self._countdown is not None:
            varying.append("eta")
        if self._expires_after is not None:
            varying.append("expires")
        header = template.header()
        if any(name not in header for name in varying):
            return
        tokens = {name: f"\x00{os.urandom(16).hex()}\x00" for name in varying}
        line = _HEADER_ENCODER.encode({**header, **tokens})
        written = {name: encode_basestring_ascii(token) for name, token in tokens.items()}
        if any(line.count(text) != 1 for text in written.values()):
            return
        parts: list[bytes] = []
        slots: list[str] = []
        start = 0
        for at, name in sorted((line.index(text), name) for name, text in written.items()):
            parts.append(line[start:at].encode("ascii"))
            start = at + len(written[name])
            slots.append(name)
        parts.append(line[start:].encode("ascii"))
        self._parts = parts
        self._pairs = tuple(zip(slots, parts[1:], strict=True))
        if slots == ["id", "sent_at"]:
            self._id_then_time = (parts[0], parts[1], parts[2] + b"\n")

    def message(self, id: str, body: bytes, now: float) -> Message:
        """The message with this id and (uncompressed) body, sent at ``now``."""
        message = object.__new__(Message)
        values = message.__dict__
        values.update(self._fields)
        values["id"] = id
        values["body"] = body
        values["sent_at"] = now
        if self._countdown is not None:
            values["eta"] = now + self._countdown
        if self._expires_after is not None:
            values["expires"] = now + self._expires_after
        # Each message owns its dicts, as one built alone does (a middleware may change them).
        values["headers"] = copy.deepcopy(self._headers) if self._headers else {}
        values["workflow"] = copy.deepcopy(self._workflow) if self._workflow else {}
        if self._id_then_time is not None:  # the usual line: only the id and sent_at vary
            head, middle, tail = self._id_then_time
            if values["compression"] is not None:
                body = compress(body, values["compression"])
            quoted = encode_basestring_ascii(id).encode("ascii")
            unsigned = b"".join((head, quoted, middle, _scalar(now), tail, body))
            values["_unsigned"] = values["_encoded"] = unsigned  # a template is never signed
        elif self._pairs:
            self._encode(values, *self._around_id(values))
        return message

    def messages(self, ids: Sequence[str], bodies: Sequence[bytes], now: float) -> list[Message]:
        """The messages with these ids and (uncompressed) bodies, all sent at ``now``: the
        header line around the id is spliced once for all of them."""
        if not ids:
            return []
        first = self.message(ids[0], bodies[0], now)
        shared = {k: v for k, v in first.__dict__.items() if k not in _OWN}
        around = self._around_id(shared) if self._pairs else None
        headers, workflow = self._headers, self._workflow
        new = object.__new__
        made = [first]
        for id, body in zip(ids[1:], bodies[1:], strict=True):
            message = new(Message)
            values = message.__dict__
            values.update(shared)
            values["id"] = id
            values["body"] = body
            values["headers"] = copy.deepcopy(headers) if headers else {}
            values["workflow"] = copy.deepcopy(workflow) if workflow else {}
            if around is not None:
                self._encode(values, *around)
            made.append(message)
        return made

    def _around_id(self, values: dict[str, Any]) -> tuple[bytes, bytes]:
        """The header line before the id, and after it to the newline, with the other values
        that vary (the times) taken from ``values``."""
        head, line = b"", self._parts[0]
        for name, part in self._pairs:
            if name == "id":
                head, line = line, part
            else:
                line += _scalar(values[name]) + part
        return head, line + b"\n"

    @staticmethod
    def _encode(values: dict[str, Any], head: bytes, tail: bytes) -> None:
        body = values["body"]
        if values["compression"] is not None:
            body = compress(body, values["compression"])
        quoted = encode_basestring_ascii(values["id"]).encode("ascii")
        unsigned = b"".join((head, quoted, tail, body))
        values["_unsigned"] = values["_encoded"] = unsigned  # a template is never signed

    def seal(self, message: Message) -> None:
        """Keep the bytes ``message`` (made by :meth:`message`) was made with, unless a
        middleware changed its headers or workflow: then it encodes as any message does."""
        values = message.__dict__
        if values["headers"] != self._headers or values["workflow"] != self._workflow:
            values.pop("_unsigned", None)
            values.pop("_encoded", None)


_OWN = frozenset({"id", "body", "headers", "workflow", "_unsigned", "_encoded"})


def _scalar(value: Any) -> bytes:
    """A time as ``json`` writes it in a header: by orjson, at a fifth of ``repr``'s cost,
    where the two write the same (``headers._same_with_orjson``)."""
    if type(value) is float and (value == 0.0 or 1e-4 <= abs(value) < 1e16):
        return orjson.dumps(value)
    return _HEADER_ENCODER.encode(value).encode("ascii")


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
    """Best-effort task id of bytes that may be malformed, so a failure can still be recorded
    (only where nothing is authenticated: see ``worker/intake.py``)."""
    try:
        _, unsigned = _split_signature(raw)
        header = _parse_header(unsigned.partition(b"\n")[0])
    except MalformedMessage:
        return None
    value = header.get("id")
    return value if isinstance(value, str) and 0 < len(value) <= 1024 else None
