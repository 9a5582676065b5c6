"""The JSON serializer writes a call's arguments with the C encoder directly (no
``JSONEncoder.encode`` layers on the send path): byte for byte what ``json.dumps`` with the
same options writes, the same errors, and the extra types still tagged and read back."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Any

import pytest

from celeriac.serialization import json_dumps, json_loads

PLAIN: list[Any] = [
    [[], {}],
    [[1, -2, 3.5, 1e-7, 1e300, -0.0, 2**70, True, False, None], {"k": "v"}],
    [["é", "日本", "\u2028", "\x00\x1f", '"\\/'], {"nested": [{"a": [1, {"b": None}]}]}],
    {"1": 1, "x": {"y": []}},
    "a string",
    12,
    (1, 2),
    [float("nan"), float("inf"), -float("inf")],
]


@pytest.mark.parametrize("value", PLAIN, ids=range(len(PLAIN)))
def test_plain_values_are_written_as_json_dumps_writes_them(value: Any) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert json_dumps(value) == expected


def test_the_extra_types_are_tagged_and_read_back() -> None:
    value = [
        datetime.datetime(2030, 1, 2, 3, 4, 5, 6),
        datetime.date(2030, 1, 2),
        uuid.UUID(int=7),
        decimal.Decimal("1.25"),
        b"\x00bytes",
    ]
    assert json_loads(json_dumps([value, {}])) == [value, {}]


def test_a_value_nested_in_itself_is_refused() -> None:
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        json_dumps([looped, {}])
    assert json_dumps([[1], {}]) == b"[[1],{}]"  # nothing left behind by the refusal


@pytest.mark.parametrize("value", [[object()], {(1, 2): 1}], ids=["object", "tuple key"])
def test_what_json_cannot_carry_is_a_type_error(value: Any) -> None:
    with pytest.raises(TypeError):
        json_dumps(value)
