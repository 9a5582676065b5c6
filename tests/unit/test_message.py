"""The wire envelope: encode, decode, signing, and decoding the arguments."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields, replace

import pytest

from celeriac.exceptions import ContentDisallowed, MalformedMessage, SignatureMismatch
from celeriac.message import PROTOCOL, Message, decode_arguments, open_message, peek_id
from celeriac.serialization import JSON, PICKLE, Serializer

SIGNING = Serializer(key=b"secret key")


def full_message() -> Message:
    """A message where no field has its default value."""
    return Message(
        id="id-1",
        task="jobs.add",
        body=b'[[2,2],{"x":"\xc3\xa9"}]\n with a newline',
        content_type=PICKLE,
        queue="high",
        priority=7,
        eta=1_700_000_100.5,
        expires=1_700_000_200.25,
        retries=2,
        sent_at=1_700_000_000.125,
        parent_id="parent",
        root_id="root",
        group_id="group",
        ignore_result=True,
        time_limit=30.0,
        soft_time_limit=25.5,
        headers={"trace": "abc", "n": [1, 2]},
        workflow={"chain": [{"task": "jobs.mul", "args": [3]}]},
        signature="f" * 64,
    )


def header_line(**header: object) -> bytes:
    return json.dumps(header).encode() + b"\n[[],{}]"


def test_encode_then_decode_keeps_every_field() -> None:
    message = full_message()

    decoded = Message.decode(message.encode())

    assert decoded == message
    for f in fields(Message):
        assert getattr(decoded, f.name) == getattr(message, f.name), f.name


def test_encode_then_decode_keeps_the_defaults() -> None:
    message = Message(id="id-2", task="jobs.noop", body=b"")
    assert Message.decode(message.encode()) == message


def test_encode_is_one_json_header_line_then_the_body() -> None:
    message = replace(full_message(), signature=None)
    line, newline, body = message.encode().partition(b"\n")

    header = json.loads(line)
    assert newline == b"\n"
    assert body == message.body
    assert header["v"] == PROTOCOL
    assert "body" not in header and "sig" not in header


def test_a_signed_message_puts_its_signature_on_a_line_before_the_header() -> None:
    signed = Message(id="id-s", task="jobs.add", body=b"[[1],{}]").signed(SIGNING)
    first, _, rest = signed.encode().partition(b"\n")
    assert first == b"sig " + (signed.signature or "").encode()
    assert SIGNING.sign(rest) == signed.signature  # it covers every byte after it


def test_a_decoded_message_encodes_to_the_bytes_it_came_from() -> None:
    signed = Message(id="id-r", task="jobs.add", body=b"[[1],{}]", priority=3).signed(SIGNING)
    # Written by another client: other key order and spacing, still validly signed.
    header = b'{"task": "jobs.add", "priority": 3, "id": "id-r", "sent_at": 1.5, "v": 1}'
    unsigned = header + b"\n" + signed.body
    raw = b"sig " + (SIGNING.sign(unsigned) or "").encode() + b"\n" + unsigned
    again = open_message(raw, SIGNING)
    assert again.encode() == raw
    open_message(again.encode(), SIGNING)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"id":"a","task":"t","v":1}', id="no-newline"),
        pytest.param(b"", id="empty"),
        pytest.param(b"not json\n[[],{}]", id="header-not-json"),
        pytest.param(b"\xff\xfe\n[[],{}]", id="header-not-utf8"),
        pytest.param(b'["a","t"]\n[[],{}]', id="header-not-object"),
        pytest.param(header_line(task="t", v=1), id="missing-id"),
        pytest.param(header_line(id="a", v=1), id="missing-task"),
        pytest.param(header_line(id=1, task="t", v=1), id="id-not-string"),
        pytest.param(header_line(id="a", task="t"), id="no-protocol-version"),
        pytest.param(header_line(id="a", task="t", v=2), id="wrong-protocol-version"),
        pytest.param(header_line(id="a", task="t", v=1, colour="red"), id="unknown-field"),
        pytest.param(header_line(id="a", task="t", v=1, body="x"), id="body-in-header"),
        pytest.param(b"[" * 100_000 + b"\n[[],{}]", id="nested-100000-deep"),
        pytest.param(b"sig xyz\n" + header_line(id="a", task="t", v=1), id="bad-signature-line"),
    ],
)
def test_decode_refuses_what_is_not_a_message(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        Message.decode(raw)


def test_a_signed_message_verifies_after_the_wire() -> None:
    message = Message(id="id-3", task="jobs.add", body=b"[[1],{}]", headers={"b": 1, "a": 2})

    signed = message.signed(SIGNING)

    assert signed.signature is not None
    Message.decode(signed.encode()).verify(SIGNING)


def test_signing_is_a_no_op_without_a_key() -> None:
    message = Message(id="id-4", task="jobs.add", body=b"[[],{}]")
    unsigned = message.signed(Serializer())
    assert unsigned.signature is None
    unsigned.verify(Serializer())


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda m: replace(m, body=b"[[666],{}]"), id="body"),
        pytest.param(lambda m: replace(m, task="jobs.rm_rf"), id="task"),
        pytest.param(lambda m: replace(m, eta=1.0), id="eta"),
        pytest.param(lambda m: replace(m, headers={"x": 1}), id="headers"),
        pytest.param(lambda m: replace(m, content_type=PICKLE), id="content-type"),
        pytest.param(lambda m: replace(m, signature=None), id="signature-missing"),
        pytest.param(lambda m: replace(m, signature="0" * 64), id="signature-wrong"),
    ],
)
def test_a_tampered_message_fails_verification(tamper: Callable[[Message], Message]) -> None:
    signed = Message(id="id-5", task="jobs.add", body=b"[[1],{}]").signed(SIGNING)
    tampered = Message.decode(tamper(signed).encode())

    with pytest.raises(SignatureMismatch):
        tampered.verify(SIGNING)


def test_a_message_signed_with_another_key_fails_verification() -> None:
    signed = Message(id="id-6", task="jobs.add", body=b"[[],{}]").signed(Serializer(key=b"other"))
    with pytest.raises(SignatureMismatch):
        signed.verify(SIGNING)


def test_arguments_decodes_args_and_kwargs() -> None:
    serializer = Serializer()
    message = Message(id="id-7", task="jobs.add", body=serializer.dumps([[1, "a"], {"k": None}]))
    assert message.arguments(serializer) == ([1, "a"], {"k": None})


@pytest.mark.parametrize(
    "body",
    [b"null", b"{}", b"[]", b"[[]]", b"[[],{},1]", b"[{},{}]", b"[[],[]]", b'"args"', b"not json"],
)
def test_decode_arguments_refuses_a_body_that_is_not_args_and_kwargs(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_arguments(Serializer(), JSON, body)


def test_decode_arguments_refuses_a_content_type_the_app_does_not_accept() -> None:
    with pytest.raises(ContentDisallowed):
        decode_arguments(Serializer(), PICKLE, b"\x80\x04N.")


def test_peek_id_finds_the_id_of_a_message_even_when_it_is_otherwise_broken() -> None:
    assert peek_id(header_line(id="abc", v=99)) == "abc"
    assert peek_id(b"garbage\n") is None
    assert peek_id(b"[1]\n") is None
    assert peek_id(header_line(id=5)) is None


WRONG_TYPES = [
    ("time_limit", "10"),
    ("soft_time_limit", "soon"),
    ("time_limit", 0),
    ("expires", "tomorrow"),
    ("eta", float("inf")),
    ("eta", -5),
    ("priority", 10),
    ("priority", True),
    ("priority", "9"),
    ("retries", "x"),
    ("retries", -1),
    ("ignore_result", "no"),
    ("sent_at", None),
    ("queue", ""),
    ("queue", 7),
    ("content_type", None),
    ("parent_id", 5),
    ("headers", [1, 2]),
    ("workflow", "chain"),
    ("id", "x" * 2000),
]


@pytest.mark.parametrize(
    ("name", "value"), WRONG_TYPES, ids=[f"{n}={v!r:.20}" for n, v in WRONG_TYPES]
)
def test_decode_refuses_a_header_field_of_the_wrong_type_and_names_it(
    name: str, value: object
) -> None:
    fields_ = {"id": "a", "task": "t", "sent_at": 1.0, "v": 1, name: value}
    with pytest.raises(MalformedMessage, match=repr(name)):
        Message.decode(header_line(**fields_))


@pytest.mark.parametrize(
    "workflow",
    [
        {"chain": "jobs.add"},
        {"chain": [1]},
        {"chord": {"id": "c", "size": "2"}},
        {"dag": {"run": "r", "node": "n"}},
        {"xmap": "reduce"},
        {"surprise": {}},
    ],
)
def test_decode_refuses_a_workflow_entry_of_the_wrong_shape(workflow: dict[str, object]) -> None:
    with pytest.raises(MalformedMessage, match="workflow entry"):
        Message.decode(header_line(id="a", task="t", v=1, workflow=workflow))


def test_open_message_checks_the_signature_on_the_raw_bytes_before_parsing() -> None:
    unsigned = b"[" * 100_000 + b"\n[[],{}]"  # would fail to parse: it is never parsed
    with pytest.raises(SignatureMismatch, match="not signed"):
        open_message(unsigned, SIGNING)
    forged = b"sig " + b"0" * 64 + b"\n" + unsigned
    with pytest.raises(SignatureMismatch):
        open_message(forged, SIGNING)
    honest = Message(id="id-8", task="jobs.add", body=b"[[],{}]").signed(SIGNING)
    assert open_message(honest.encode(), SIGNING) == honest
    assert open_message(Message(id="id-9", task="t", body=b"").encode(), Serializer()).id == "id-9"


def test_peek_id_reads_past_a_signature_line_and_survives_deep_nesting() -> None:
    signed = Message(id="id-10", task="jobs.add", body=b"[[],{}]").signed(SIGNING)
    assert peek_id(signed.encode()) == "id-10"
    assert peek_id(b"[" * 100_000 + b"\n") is None
