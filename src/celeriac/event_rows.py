"""Event rows: task events as the worker records them, and as the event log keeps them.

The worker's main process, which every task goes through, records each event as a **row**
that costs it a microsecond or so: ``[type, task_id, timestamp, raw]``, ``raw`` holding what
the event's fields are made of, undecoded (a JSON body as text, a failure's stored payload as
text; ``middleware/events.py`` makes them). Rows travel as **frames**, JSON arrays of rows
(one ``orjson.dumps``): down the worker's socket to its events process, and from there, as
they are, into the backend's event log (``ResultBackend.append_events``). Only a reader of the
log (the feed, the history's indexer) makes TaskEvents of them (:func:`events_of`): it splits
the body into args and kwargs and reads the traceback. A TaskEvent made elsewhere (task-sent,
task-progress) goes into the log as a row too (:func:`row_of`): its fields pass through
unchanged. See docs/design/monitoring.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from celeriac.history import TEXT_LIMIT, TaskEvent
from celeriac.serialization import JSON, exception_info

log = logging.getLogger("celeriac.events")

EventRow = list[Any]  # [type, task_id, timestamp, raw]
FRAME_BYTES = 96 * 1024  # one frame at most: a socket's default send buffer holds two


def clip(text: str) -> str:
    """``text`` cut to ``TEXT_LIMIT`` characters (a history field's limit)."""
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + "..."


def arguments_text(body: bytes | str, content_type: str, hide: bool) -> tuple[str, str]:
    """A message body's args and kwargs as JSON text ('' when hidden; a description when the
    body is not JSON: nothing here ever unpickles)."""
    if hide:
        return "", ""
    if content_type != JSON:
        return f"({len(body)} bytes of {content_type})", ""
    try:
        args, kwargs = orjson.loads(body)
        return clip(orjson.dumps(args).decode()), clip(orjson.dumps(kwargs).decode())
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return "", ""


def fields_of(fields: dict[str, Any]) -> dict[str, Any]:
    """A row's raw parts made Celery's fields (in place): the body split into args and kwargs,
    the traceback read from the stored failure, the result cut to ``TEXT_LIMIT``. Fields that
    are Celery's already pass through."""
    body = fields.pop("body", None)
    if body is not None:
        fields["args"], fields["kwargs"] = arguments_text(body, JSON, False)
    error = fields.pop("error", None)
    if error is not None:
        info = exception_info(error.encode("utf-8", "replace"))
        fields["traceback"] = clip(str(info.get("traceback") or ""))
    if "result" in fields:
        fields["result"] = clip(fields["result"])
    return fields


def event_of(row: EventRow, hostname: str) -> TaskEvent:
    """The TaskEvent of a row, its fields as Celery has them.

    Raises:
        ValueError: ``row`` is not an event row.
    """
    try:
        kind, task_id, timestamp, raw = row
        fields = fields_of(dict(raw or {}))
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a task event row: {row!r}") from exc
    return TaskEvent(str(kind), str(task_id), float(timestamp), hostname, fields)


def events_of(rows: Iterable[EventRow], hostname: str) -> list[TaskEvent]:
    """The TaskEvents of ``rows`` (see :func:`event_of`); a row that is not one is skipped."""
    events = []
    for row in rows:
        try:
            events.append(event_of(row, hostname))
        except ValueError as exc:  # cannot happen between two celeriac processes
            log.warning("%s", exc)
    return events


def row_of(event: TaskEvent) -> EventRow:
    """A TaskEvent as a row (its host is the frame's: see ``ResultBackend.append_events``)."""
    return [event.type, event.task_id, event.timestamp, dict(event.fields)]


def encode(rows: Sequence[EventRow]) -> bytes:
    """``rows`` as one frame: a JSON array."""
    try:
        return orjson.dumps(rows, default=str)
    except TypeError:  # what orjson refuses (an int past 64 bits): json takes it
        return json.dumps(rows, separators=(",", ":"), default=str).encode()


def decode(frame: bytes) -> list[EventRow]:
    """The rows of a frame that :func:`encode` made.

    Raises:
        ValueError: ``frame`` is not such a frame.
    """
    try:
        rows = orjson.loads(frame)
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
        raise ValueError(f"not a frame of task events: {exc}") from exc
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == 4 for r in rows):
        raise ValueError("not a frame of task events: rows of 4 expected")
    return rows


def frame_events(frame: bytes, hostname: str) -> list[TaskEvent]:
    """The TaskEvents of a frame from the log; a frame that is not one stands for none
    (logged: the log is written by celeriac processes only)."""
    try:
        return events_of(decode(frame), hostname)
    except ValueError as exc:
        log.warning("%s", exc)
        return []


def frames(rows: Sequence[EventRow], limit: int = FRAME_BYTES) -> list[tuple[bytes, int]]:
    """``rows`` cut into frames of at most ``limit`` bytes, in order, with how many rows each
    stands for. A row that alone is larger than ``limit`` is left out (logged) and stands as
    an empty frame: nothing in the history is that large (its text fields are cut at 16 KB
    each)."""
    out: list[tuple[bytes, int]] = []
    stack = [list(rows)]
    while stack:
        part = stack.pop()
        if not part:
            continue
        frame = encode(part)
        if len(frame) <= limit:
            out.append((frame, len(part)))
        elif len(part) == 1:
            log.warning("task event of %d bytes not recorded (the limit is %d)", len(frame), limit)
            out.append((b"", 1))
        else:
            half = len(part) // 2
            stack += [part[half:], part[:half]]  # popped in order: the first half first
    return out


__all__ = [
    "FRAME_BYTES",
    "EventRow",
    "arguments_text",
    "clip",
    "decode",
    "encode",
    "event_of",
    "events_of",
    "fields_of",
    "frame_events",
    "frames",
    "row_of",
]
