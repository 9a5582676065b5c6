"""Serialization: the JSON dialect, the serializer policy, and exceptions across processes."""

from __future__ import annotations

import datetime
import decimal
import pickle
import uuid
from typing import Any

import pytest

from celeriac.exceptions import (
    ConfigurationError,
    ContentDisallowed,
    MalformedMessage,
    SignatureMismatch,
    TaskError,
)
from celeriac.serialization import (
    JSON,
    PICKLE,
    Serializer,
    exception_from_dict,
    exception_to_dict,
    json_dumps,
    json_loads,
)


class InventoryError(Exception):
    """A user's exception type, importable by its module and name."""


class Outer:
    class Nested(ValueError):
        """An exception type reached through a qualified name."""


class NeedsTwo(Exception):
    def __init__(self, first: str, second: str) -> None:
        super().__init__(first, second)


# -- the JSON dialect ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(datetime.datetime(2024, 2, 29, 23, 59, 58, 123456), id="naive-datetime"),
        pytest.param(
            datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC), id="utc-datetime"
        ),
        pytest.param(
            datetime.datetime(
                2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))
            ),
            id="offset-datetime",
        ),
        pytest.param(datetime.date(1999, 12, 31), id="date"),
        pytest.param(datetime.time(13, 14, 15, 16), id="time"),
        pytest.param(uuid.UUID("12345678-1234-5678-1234-567812345678"), id="uuid"),
        pytest.param(decimal.Decimal("3.14159265358979323846264338327950288"), id="decimal"),
        pytest.param(b"\x00\xffbytes\n", id="bytes"),
        pytest.param(b"", id="empty-bytes"),
    ],
)
def test_json_keeps_the_extra_types(value: object) -> None:
    decoded = json_loads(json_dumps(value))
    assert decoded == value
    assert type(decoded) is type(value)


def test_json_keeps_the_extra_types_inside_containers() -> None:
    value = {
        "when": [datetime.date(2020, 1, 1), {"id": uuid.UUID(int=7)}],
        "amount": decimal.Decimal("1.10"),
        "text": "ünïcode",
        "plain": [1, 2.5, None, True],
    }
    assert json_loads(json_dumps(value)) == value


def test_json_turns_sets_into_lists() -> None:
    decoded = json_loads(json_dumps({"s": {3, 1, 2}, "f": frozenset(["x"])}))
    assert sorted(decoded["s"]) == [1, 2, 3]
    assert decoded["f"] == ["x"]


def test_json_leaves_ordinary_dicts_alone() -> None:
    value = {"__celeriac__": "not ours", "v": 1, "other": 2}
    assert json_loads(json_dumps(value)) == value
    assert json_loads(b'{"__celeriac__": "unknown", "v": 1}') == {"__celeriac__": "unknown", "v": 1}
    assert json_loads(b'{"__celeriac__": "uuid", "x": 1}') == {"__celeriac__": "uuid", "x": 1}
    assert json_loads(b'{"__celeriac__": [1], "v": 1}') == {"__celeriac__": [1], "v": 1}


def test_json_refuses_what_it_cannot_carry() -> None:
    with pytest.raises(TypeError, match="object"):
        json_dumps(object())


# -- the serializer policy -----------------------------------------------------------------------


def test_the_default_serializer_writes_and_accepts_json_only() -> None:
    serializer = Serializer.from_settings("json", ["json"], None)

    assert serializer.content_type == JSON
    assert serializer.accept == frozenset({JSON})
    data = serializer.dumps([[1], {"when": datetime.date(2020, 1, 1)}])
    assert serializer.loads(JSON, data) == [[1], {"when": datetime.date(2020, 1, 1)}]


@pytest.mark.parametrize(
    ("serializer", "accept"),
    [("pickle", ["pickle"]), ("json", ["json", "pickle"]), ("json", [PICKLE])],
)
def test_pickle_is_refused_without_a_security_key(serializer: str, accept: list[str]) -> None:
    with pytest.raises(ConfigurationError, match="security_key"):
        Serializer.from_settings(serializer, accept, None)
    with pytest.raises(ConfigurationError, match="security_key"):
        Serializer.from_settings(serializer, accept, "")


def test_pickle_with_a_security_key_signs_and_roundtrips() -> None:
    serializer = Serializer.from_settings("pickle", ["json"], "k3y")

    assert serializer.content_type == PICKLE
    assert serializer.accept == frozenset({JSON, PICKLE})
    assert serializer.key == b"k3y"
    assert serializer.loads(PICKLE, serializer.dumps({1, 2})) == {1, 2}


def test_an_unknown_serializer_name_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="yaml"):
        Serializer.from_settings("yaml", ["json"], None)
    with pytest.raises(ConfigurationError, match="msgpack"):
        Serializer.from_settings("json", ["msgpack"], None)


def test_loads_refuses_a_content_type_that_is_not_accepted() -> None:
    with pytest.raises(ContentDisallowed):
        Serializer().loads(PICKLE, pickle.dumps([[], {}]))
    with pytest.raises(ContentDisallowed):
        Serializer().loads("application/yaml", b"[]")


def test_loads_raises_malformed_message_for_data_that_does_not_decode() -> None:
    with pytest.raises(MalformedMessage):
        Serializer().loads(JSON, b"{not json")
    with pytest.raises(MalformedMessage):
        Serializer(content_type=PICKLE, accept=frozenset({PICKLE}), key=b"k").loads(
            PICKLE, b"garbage"
        )


def test_sign_and_verify() -> None:
    serializer = Serializer(key=b"k")
    signature = serializer.sign(b"header", b"body")

    assert signature is not None
    serializer.verify(signature, b"header", b"body")
    with pytest.raises(SignatureMismatch):
        serializer.verify(signature, b"header", b"bodY")
    with pytest.raises(SignatureMismatch):
        serializer.verify(signature, b"headerb", b"ody")  # the parts' boundaries count
    with pytest.raises(SignatureMismatch):
        serializer.verify(None, b"header", b"body")
    assert Serializer().sign(b"x") is None
    Serializer().verify(None, b"x")


# -- exceptions ----------------------------------------------------------------------------------


def roundtrip(exc: BaseException) -> BaseException:
    """Describe ``exc``, carry the description as JSON, and rebuild it, as a result would."""
    return exception_from_dict(json_loads(json_dumps(exception_to_dict(exc))))


@pytest.mark.parametrize(
    "exc",
    [
        KeyError("missing"),
        ValueError("bad value", 3),
        ZeroDivisionError("division by zero"),
        RuntimeError(),
        InventoryError("out of stock", {"sku": "A-1"}),
        Outer.Nested("deep"),
    ],
    ids=lambda exc: type(exc).__qualname__,
)
def test_an_exception_comes_back_with_its_type_and_arguments(exc: BaseException) -> None:
    rebuilt = roundtrip(exc)

    assert type(rebuilt) is type(exc)
    assert rebuilt.args == exc.args


def test_exception_to_dict_names_the_type_and_keeps_the_traceback() -> None:
    try:
        raise InventoryError("out of stock")
    except InventoryError as exc:
        info = exception_to_dict(exc)

    assert info["exc_type"] == "InventoryError"
    assert info["exc_module"] == __name__
    assert info["exc_message"] == ["out of stock"]
    assert "Traceback" in info["traceback"]
    assert 'raise InventoryError("out of stock")' in info["traceback"]


def test_exception_arguments_that_json_cannot_carry_become_text() -> None:
    exc = ValueError(object(), 1)

    assert exception_to_dict(exc)["exc_message"] == [str(exc)]
    rebuilt = roundtrip(exc)
    assert type(rebuilt) is ValueError
    assert rebuilt.args == (str(exc),)


@pytest.mark.parametrize(
    ("info", "name"),
    [
        ({"exc_type": "Boom", "exc_module": "no_such_module_here"}, "no_such_module_here.Boom"),
        ({"exc_type": "NoSuchError", "exc_module": __name__}, f"{__name__}.NoSuchError"),
        ({"exc_type": "Outer", "exc_module": __name__}, f"{__name__}.Outer"),  # not an exception
        ({"exc_type": "NoSuchBuiltinError", "exc_module": "builtins"}, "NoSuchBuiltinError"),
        ({"exc_type": "NeedsTwo", "exc_module": __name__}, f"{__name__}.NeedsTwo"),
    ],
)
def test_an_unknown_exception_type_falls_back_to_task_error(
    info: dict[str, Any], name: str
) -> None:
    rebuilt = exception_from_dict({**info, "exc_message": ["it broke"]})

    assert isinstance(rebuilt, TaskError)
    assert rebuilt.exc_type == name
    assert str(rebuilt) == f"{name}: it broke"


def test_exception_from_dict_tolerates_a_sparse_description() -> None:
    assert type(exception_from_dict({})) is Exception
    rebuilt = exception_from_dict(
        {"exc_type": "KeyError", "exc_module": "builtins", "exc_message": "k"}
    )
    assert isinstance(rebuilt, KeyError)
    assert rebuilt.args == ("k",)
