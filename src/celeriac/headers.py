"""The message header's schema: every field's type and range, checked in one place.

A worker reads a fetched message's header before anything else does, and whatever wrote it
(a buggy client in another language, a corrupted key, an attacker inside the network) may have
put anything there. :func:`check_header` runs on every decoded header: a field of the wrong
type or out of range is refused with an error that names it, so it never reaches a time limit,
a comparison or a result store where it would crash the worker's main process or leave a
result that cannot be read. Fields at their default value are absent from the wire, so a usual
message costs a handful of checks.

``workflow`` is checked to the depth the worker reads it (``canvas.plan`` lists its entries);
what is inside a signature is checked where it is used.

:func:`encode_header` writes the header line: by orjson when that gives the very bytes of
``json`` (compact, ASCII), which it does for a usual header; by ``json`` otherwise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from celeriac.compression import WIRE_NAMES
from celeriac.exceptions import MalformedMessage

MAX_TEXT = 1024  # characters in an id, a task name, a queue name, a content type
MAX_RETRIES = 2**31 - 1


def _text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_TEXT


def _text_or_none(value: Any) -> bool:
    return value is None or _text(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _time(value: Any) -> bool:
    return _number(value) and value >= 0


def _time_or_none(value: Any) -> bool:
    return value is None or _time(value)


def _limit_or_none(value: Any) -> bool:
    return value is None or (_number(value) and value > 0)


def _priority(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_RETRIES


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _mapping(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(key, str) for key in value)


def _list_of_mappings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _chord(value: Any) -> bool:
    return _mapping(value) and _text(value.get("id")) and _count(value.get("size"))


def _dag(value: Any) -> bool:
    return (
        _mapping(value)
        and _text(value.get("run"))
        and _text(value.get("node"))
        and _count(value.get("attempt"))
    )


Check = Callable[[Any], bool]

# Each field: the check, and what it says a value must be (for the error).
FIELDS: Mapping[str, tuple[Check, str]] = {
    "v": (_count, "the protocol version"),
    "id": (_text, "a non-empty string"),
    "task": (_text, "a non-empty string"),
    "content_type": (_text, "a non-empty string"),
    "queue": (_text, "a non-empty string"),
    "priority": (_priority, "an integer from 0 to 9"),
    "eta": (_time_or_none, "epoch seconds or null"),
    "expires": (_time_or_none, "epoch seconds or null"),
    "retries": (_count, "a count (an integer, 0 or more)"),
    "sent_at": (_time, "epoch seconds"),
    "parent_id": (_text_or_none, "a string or null"),
    "root_id": (_text_or_none, "a string or null"),
    "group_id": (_text_or_none, "a string or null"),
    "ignore_result": (_flag, "true or false"),
    "time_limit": (_limit_or_none, "seconds (more than 0) or null"),
    "soft_time_limit": (_limit_or_none, "seconds (more than 0) or null"),
    "headers": (_mapping, "an object"),
    "workflow": (_mapping, "an object"),
    "compression": (lambda value: value in WIRE_NAMES, "one of " + ", ".join(sorted(WIRE_NAMES))),
}

# The entries of ``workflow`` that the worker reads (see canvas/plan.py).
WORKFLOW: Mapping[str, tuple[Check, str]] = {
    "chain": (_list_of_mappings, "a list of signatures"),
    "link": (_list_of_mappings, "a list of signatures"),
    "link_error": (_list_of_mappings, "a list of signatures"),
    "chord": (_chord, "an object with a string 'id' and a count 'size'"),
    "dag": (_dag, "an object with strings 'run' and 'node' and a count 'attempt'"),
    "errback": (_mapping, "an object"),
    "xmap": (lambda value: value in ("map", "starmap"), "'map' or 'starmap'"),
    "dag_failed": (_mapping, "an object"),
}


def _refuse(where: str, name: str, value: Any, what: str) -> MalformedMessage:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return MalformedMessage(f"{where} {name!r} must be {what}, not {shown}")


def check_header(header: dict[str, Any]) -> None:
    """Raise unless every field of a decoded header has its type and range.

    Raises:
        MalformedMessage: naming the first field that does not (or an unknown one).
    """
    for name, value in header.items():
        rule = FIELDS.get(name)
        if rule is None:
            raise MalformedMessage(f"unknown header field {name!r}")
        check, what = rule
        if not check(value):
            raise _refuse("header field", name, value, what)
    for name in ("id", "task"):
        if name not in header:
            raise MalformedMessage(f"header field {name!r} is missing")
    workflow = header.get("workflow")
    if workflow:
        for name, value in workflow.items():
            rule = WORKFLOW.get(name)
            if rule is None:
                raise MalformedMessage(f"unknown workflow entry {name!r}")
            check, what = rule
            if not check(value):
                raise _refuse("workflow entry", name, value, what)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)
_SCALARS = (str, int, bool, type(None))


def _same_with_orjson(value: Any) -> bool:
    """Whether orjson writes ``value`` as ``json`` does, when its output is ASCII.

    Strings, integers, booleans and None it does (past 64 bits it refuses them); a float when
    ``repr`` writes it without an exponent (orjson writes ``1e-05`` as ``0.00001``, ``NaN``
    as ``null``). Containers, subclasses and other types go to ``json``, whose errors and
    conversions they keep.
    """
    kind = type(value)
    if kind is float:
        return bool(value == 0.0 or 1e-4 <= abs(value) < 1e16)  # False for NaN
    return kind in _SCALARS


def encode_header(header: Mapping[str, Any]) -> bytes:
    """The header line: what ``json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)``
    writes, byte for byte, by orjson when the values allow it (see :func:`_same_with_orjson`).

    Raises:
        TypeError: a value JSON cannot carry.
        ValueError: a value nested in itself.
    """
    if type(header) is dict and all(_same_with_orjson(value) for value in header.values()):
        try:
            line = orjson.dumps(header)
        except TypeError:  # an integer past 64 bits: json writes it
            pass
        else:
            if line.isascii() and b"\x7f" not in line:  # json escapes what is not ASCII, and DEL
                return line
    return _ENCODER.encode(header).encode()
