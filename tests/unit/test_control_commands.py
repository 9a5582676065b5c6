"""The control wire format and the worker's reader: who a command is for, which commands a
worker acts on (not those sent before it started, revocations aside), Celery's argument names."""

from __future__ import annotations

from celeriac.backends.memory import MemoryBackend
from celeriac.brokers.memory import MemoryBroker
from celeriac.control import decode_command, encode_command, signal_number
from celeriac.control.replies import gather, new_reply_key, write_reply
from celeriac.worker.commands import CommandReader
from support.clock import FakeClock


def test_a_worker_acts_only_on_new_commands_for_it_but_knows_every_revocation() -> None:
    broker = MemoryBroker()
    broker.broadcast(encode_command("shutdown"))
    broker.broadcast(encode_command("revoke", ids=["old"], reply_to="k"))
    reader = CommandReader(broker, hostname="w1@host")
    reader.read()
    assert reader.take_requests() == [] and "old" in reader
    for destination in (None, ["w1@host"], ["w2@host"]):
        broker.broadcast(encode_command("ping", destination=destination, reply_to="k"))
    broker.broadcast(encode_command("revoke", ids=["new"]))  # no reply asked: nothing to answer
    broker.broadcast(encode_command("revoke", ids=["there"], destination=["w2@host"]))
    reader.read()
    assert [c["op"] for c in reader.take_requests()] == ["ping", "ping"]
    assert reader.revoked == ["old", "new", "there"]


def test_celery_argument_names_are_read_too() -> None:
    rate = decode_command(b'{"op": "rate_limit", "task_name": "t", "rate_limit": "1/s"}')
    assert rate == {"op": "rate_limit", "task": "t", "rate": "1/s"}
    revoke = decode_command(b'{"op": "revoke", "task_id": "abc"}')
    assert revoke == {"op": "revoke", "ids": ["abc"]}
    assert decode_command(b"[1]") is None and decode_command(b"not json") is None
    assert signal_number("KILL") == signal_number("SIGKILL") == signal_number("9") == 9


def test_replies_are_gathered_until_the_limit_or_the_timeout() -> None:
    backend, clock = MemoryBackend(), FakeClock(0.0)
    key = new_reply_key()
    write_reply(backend, key, "w1@host", {"ok": "pong"})
    assert gather(backend, key, timeout=1.0, limit=1, clock=clock, sleep=clock.advance) == [
        {"w1@host": {"ok": "pong"}}
    ]
    write_reply(backend, key, "w2@host", {"ok": "pong"})
    both = gather(backend, key, timeout=1.0, clock=clock, sleep=clock.advance)
    assert both == [{"w1@host": {"ok": "pong"}}, {"w2@host": {"ok": "pong"}}]
    assert gather(backend, new_reply_key(), timeout=1.0, clock=clock, sleep=clock.advance) == []
