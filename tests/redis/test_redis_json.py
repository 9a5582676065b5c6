"""JSON through orjson on the hot paths reads and writes what ``json`` did: the same values
both ways (a record stored by the code before it is read by the code after it, and back)."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import pytest

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.backends.redis import RedisBackend
from celeriac.serialization import json_dumps, json_loads, parse_json
from support.redis_server import RedisServer

EDGE_CASES = [
    b"null",
    b" {} ",
    b'{"a":1,"a":2}',
    b"[1.0, -0.0, 0, -0, 1e5, 1E-7, 5e-324, 1.7976931348623157e308]",
    b"1e400",
    b"-1e400",
    b"NaN",
    b"[Infinity, -Infinity]",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"123456789012345678901234567890",
    b'"12345678901234567890123"',
    b'"\\ud800"',
    b'"\\u00e9\\u2028"',
    '"é\u2028"'.encode(),
    b"\xef\xbb\xbf{}",
    '{"k": "v"}'.encode("utf-16"),
    b'{"a": [1, {"b": null}], "c": true}',
    b"[" * 5000 + b"]" * 5000,
    b"",
    b"{",
    b"[1,]",
    b'{"a" 1}',
    b"\xff",
    b'"\x00"',
    b"[1] x",
]


def _outcome(call: Any, data: Any) -> tuple[str, Any]:
    try:
        return "ok", call(data)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, None


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (so 1 != 1.0 and NaN == NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.mark.parametrize("data", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_parse_json_reads_what_json_loads_reads(data: bytes) -> None:
    expected, got = _outcome(json.loads, data), _outcome(parse_json, data)
    assert expected[0] == got[0]
    assert _same(expected[1], got[1]), (expected, got)
    if not data.startswith(b"\xff\xfe") and data.isascii():
        assert _same(_outcome(parse_json, data.decode())[1], expected[1])


def test_json_loads_reads_tagged_values_and_plain_ones_alike() -> None:
    values: list[Any] = [
        [[1, "a"], {"k": None}],
        {"__celeriac__": "uuid", "v": str(uuid.UUID(int=7))},
        [datetime.datetime(2024, 1, 2, 3, 4, 5), b"\x00\xff", {1, 2}],
        {"\u005f_celeriac__": "x"},
        "é",
    ]
    for value in values:
        data = json_dumps(value)
        assert _same(json_loads(data), json.loads(data, object_hook=_old_untag))
    escaped = b'{"\\u005f_celeriac__": "uuid", "v": "00000000-0000-0000-0000-000000000007"}'
    assert json_loads(escaped) == uuid.UUID(int=7)


def _old_untag(obj: dict[str, Any]) -> Any:
    from celeriac.serialization import _untag

    return _untag(obj)


def _record(task_id: str) -> ResultRecord:
    meta = {"worker": "celery@hôst-1", "task": "app.tâche", "children": ["a", "b"]}
    return ResultRecord(
        task_id, states.SUCCESS, b'{"r": 1}', date_done=1700000000.123456, retries=3, meta=meta
    )


def test_a_record_stored_by_the_old_code_reads_the_same(redis_server: RedisServer) -> None:
    backend = RedisBackend(redis_server.url())
    backend.store_many([_record("new")], expires=60)
    client = redis_server.client()
    new_raw = client.get("celeriac:result:new")
    assert isinstance(new_raw, bytes)
    expiry, state, header, payload = new_raw.split(b"\n", 3)
    # What the old code wrote: json.dumps, default separators, ASCII escapes.
    record = _record("old")
    old_header = json.dumps(
        {"c": record.content_type, "d": record.date_done, "n": record.retries, "m": record.meta}
    ).encode()
    assert old_header != header and b"\\u00f4" in old_header
    client.set("celeriac:result:old", b"\n".join([expiry, state, old_header, payload]))
    old, new = backend.get("old"), backend.get("new")
    assert old is not None and new is not None
    assert (old.state, old.payload, old.content_type, old.date_done, old.retries, old.meta) == (
        new.state,
        new.payload,
        new.content_type,
        new.date_done,
        new.retries,
        new.meta,
    )
    # And the old code's reader (json.loads) reads the new header as the same values.
    assert json.loads(header) == json.loads(old_header)
    backend.close()


def test_the_header_line_is_byte_for_byte_what_json_wrote() -> None:
    import random
    import time

    from celeriac.headers import encode_header

    old = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)
    rng = random.Random(12)
    scalars: list[Any] = [
        None, True, False, 0, -1, 2**63 - 1, 2**64, -(2**63) - 1, 0.0, -0.0, 1e-4, 9.99e-5,
        1e-5, 1e15, 1e16, 1e300, float("nan"), float("inf"), time.time(), 1.5, "", "a\"b\\c",
        "\x00\x1f\n\t", "\x7f", "é", "\u2028", "\ud800", "\U0001f600", "celeriac.noop",
    ]  # fmt: skip
    headers: list[dict[str, Any]] = [
        {"v": 1, "id": uuid.uuid4().hex, "task": "app.noop", "sent_at": time.time()},
        {"id": "x", "task": "t", "workflow": {"chain": [{"task": "b"}]}, "headers": {"k": 1}},
        {"id": "x", "task": "t", "é": 1},
    ]
    for _ in range(3000):
        headers.append({f"k{i}": rng.choice(scalars) for i in range(rng.randint(1, 6))})
    headers.append({"random": rng.random() * 10 ** rng.randint(-8, 20)})
    for header in headers:
        assert encode_header(header) == old.encode(header).encode(), header
    bad_headers: list[dict[Any, Any]] = [
        {"a": uuid.uuid4()},
        {"a": datetime.datetime.now()},
        {1: 2, "b": {3, 4}},
    ]
    for bad in bad_headers:
        with pytest.raises(TypeError):
            old.encode(bad)
        with pytest.raises(TypeError):
            encode_header(bad)
