"""The Lua scripts of the Redis broker and backend never half-apply (issue 9, defect 3).

Redis keeps what a script wrote before an error. So each test writes what a real run leaves,
damages one stored value by hand (a state that does not parse, a missing body, a key of the wrong
type) or passes one bad argument, runs the operation, and checks that either every key under the
test's prefix is as it was (a snapshot: each key's type and DUMP) or exactly the intended change
happened, and that every good message can still be fetched or recovered.

The tests share the session's ``redis-server``, each under a key prefix of its own, and move
leases and ETAs with a fake clock.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from celeriac import Celeriac, states
from celeriac._redis.connect import RedisOptions
from celeriac._redis.keys import glob_escape
from celeriac.backends.base import ResultRecord
from celeriac.backends.redis import RedisBackend
from celeriac.brokers.base import Delivery
from celeriac.brokers.redis import RedisBroker
from celeriac.brokers.redis_calls import queue_keys
from celeriac.exceptions import BrokerError, CeleriacError
from celeriac.message import Message
from celeriac.testing import in_process_worker
from support.clock import FakeClock
from support.redis_server import shared_server
from support.stores import redis_test_options, redis_test_url

LEASE = 30.0
Snapshot = dict[bytes, tuple[Any, Any, bool]]


@pytest.fixture
def clock() -> FakeClock:
    """The clock the scripts read (their "now"): leases and ETAs move only when told to."""
    return FakeClock()


@pytest.fixture
def options() -> RedisOptions:
    """Options with a key prefix of this test's own, shared by its broker and backend."""
    return redis_test_options()


@pytest.fixture
def broker(clock: FakeClock, options: RedisOptions) -> Iterator[RedisBroker]:
    """A broker on the session's server."""
    broker = RedisBroker(redis_test_url(), options, clock=clock)
    yield broker
    broker.close()


@pytest.fixture
def backend(clock: FakeClock, options: RedisOptions) -> Iterator[RedisBackend]:
    """A backend on the same server and prefix (so it joins the broker's batches)."""
    backend = RedisBackend(redis_test_url(), options, clock=clock)
    yield backend
    backend.close()


@pytest.fixture
def r() -> redis.Redis:
    """A plain client, to damage and read keys by hand."""
    return shared_server().client()


def snapshot(r: redis.Redis, options: RedisOptions) -> Snapshot:
    """Every key of the test's prefix: its type, its DUMP, and whether it has a TTL."""
    pattern = glob_escape(options.global_keyprefix) + "*"
    return {key: (r.type(key), r.dump(key), r.pttl(key) >= 0) for key in r.scan_iter(pattern)}


def message(queue: str = "q", **fields: Any) -> Message:
    """A message of a task that takes no arguments."""
    return Message(id=uuid.uuid4().hex, task="t", body=b"[[],{}]", queue=queue, **fields)


def publish(broker: RedisBroker, count: int, queue: str = "q", **fields: Any) -> list[str]:
    """Publish ``count`` messages; return their tags."""
    first = int(shared_server().client().get(broker.keys.seq) or 0)
    broker.publish_many([message(queue, **fields) for _ in range(count)])
    return [str(first + n) for n in range(1, count + 1)]


def fetch(broker: RedisBroker, queues: list[str], limit: int = 100) -> list[Delivery]:
    """Lease up to ``limit`` messages, without waiting."""
    return broker.fetch(queues, limit, lease=LEASE, consumer="w", timeout=0)


def fetch_all(broker: RedisBroker, queues: list[str], limit: int) -> list[Delivery]:
    """Fetch ``limit`` at a time, as a worker does, until no message is ready."""
    got: list[Delivery] = []
    r = shared_server().client()
    while any(r.zcard(broker.keys.ready(queue)) for queue in queues):
        got += fetch(broker, queues, limit)
    return got


def state_of(r: redis.Redis, broker: RedisBroker, tag: str) -> Any:
    """The stored state field of message ``tag`` (None when there is none)."""
    return r.hget(broker.keys.messages, f"{tag}:s")


def run_script(
    broker: RedisBroker, name: str, keys: list[str], args: list[Any], package: str = "brokers"
) -> Any:
    """Run one script by hand, with arguments no broker method would send."""
    script = broker.db.script(f"celeriac.{package}", name)
    return broker.db.call(script, keys, args)


# -- the scenario ------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [10, 2])
def test_one_damaged_state_among_six_loses_no_good_message(
    broker: RedisBroker, r: redis.Redis, clock: FakeClock, limit: int
) -> None:
    tags = publish(broker, 6)
    r.hset(broker.keys.messages, f"{tags[2]}:s", "garbage")

    got = fetch_all(broker, ["q"], limit)

    assert sorted(d.tag for d in got) == sorted(tags)  # the five good ones, and the damaged one
    assert {d.tag: d.attempt for d in got}[tags[2]] == 1  # its attempts counted afresh
    assert broker.queue_lengths(["q"]) == {"q": 6}  # all six leased, none lost
    clock.advance(LEASE + 1)
    assert broker.recover() == 6
    again = fetch(broker, ["q"])
    assert sorted(d.tag for d in again) == sorted(tags)
    assert all(d.attempt == 2 for d in again)


def test_a_leased_message_whose_state_is_damaged_comes_back_with_recover(
    broker: RedisBroker, r: redis.Redis, clock: FakeClock
) -> None:
    tags = publish(broker, 6)
    assert len(fetch(broker, ["q"])) == 6
    r.hset(broker.keys.messages, f"{tags[3]}:s", "7:x:tok")  # leased, then damaged
    clock.advance(LEASE + 1)

    assert broker.recover() == 6
    again = fetch(broker, ["q"])

    assert sorted(d.tag for d in again) == sorted(tags)
    assert {d.tag: d.attempt for d in again} == {t: 1 if t == tags[3] else 2 for t in tags}


def test_fetch_brings_back_a_run_out_lease_whose_state_is_damaged(
    broker: RedisBroker, r: redis.Redis, clock: FakeClock
) -> None:
    tags = publish(broker, 3)
    fetch(broker, ["q"])
    r.hdel(broker.keys.messages, f"{tags[0]}:s")  # its bytes are still there
    clock.advance(LEASE + 1)
    assert sorted(d.tag for d in fetch(broker, ["q"])) == sorted(tags)


def test_a_damaged_delayed_message_does_not_stop_its_queue(
    broker: RedisBroker, r: redis.Redis, clock: FakeClock
) -> None:
    tags = publish(broker, 3, eta=clock() + 10)
    r.hset(broker.keys.messages, f"{tags[1]}:s", "not a state")
    assert fetch(broker, ["q"]) == []
    clock.advance(11)
    assert sorted(d.tag for d in fetch(broker, ["q"])) == sorted(tags)


# -- fetch: each kind of damage ------------------------------------------------------------------

DAMAGE: dict[str, Callable[[redis.Redis, str, str], object]] = {
    "garbage state": lambda r, h, tag: r.hset(h, f"{tag}:s", "garbage"),
    "priority out of range": lambda r, h, tag: r.hset(h, f"{tag}:s", "12:0"),
    "priority not a number": lambda r, h, tag: r.hset(h, f"{tag}:s", "x:0"),
    "no attempt count": lambda r, h, tag: r.hset(h, f"{tag}:s", "5:"),
    "empty token": lambda r, h, tag: r.hset(h, f"{tag}:s", "5:1:"),
    "no state": lambda r, h, tag: r.hdel(h, f"{tag}:s"),
    "no body": lambda r, h, tag: r.hdel(h, tag),
    "neither": lambda r, h, tag: r.hdel(h, tag, f"{tag}:s"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_fetch_hands_out_every_good_message_past_a_damaged_one(
    broker: RedisBroker, r: redis.Redis, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    tags = publish(broker, 4, priority=5)
    damaged = tags[1]
    DAMAGE[damage](r, broker.keys.messages, damaged)

    with caplog.at_level(logging.WARNING, "celeriac.brokers.redis"):
        got = {d.tag: d for d in fetch_all(broker, ["q"], 1)}

    assert set(tags) - {damaged} <= set(got)  # every good message, in one piece
    good = [got[t] for t in tags if t != damaged]
    assert all(d.attempt == 1 and d.body.endswith(b"[[],{}]") for d in good)
    assert f"message {damaged} of queue q was damaged" in caplog.text
    if damage == "neither":  # no message at all: its tag only left the queue
        assert damaged not in got
        assert broker.queue_lengths(["q"]) == {"q": 3}
    else:  # a first delivery; the worker's intake judges its bytes
        delivery = got[damaged]
        assert delivery.attempt == 1
        assert (delivery.body == b"") == (damage == "no body")
        # The state is whole again, its priority read from the message's rank.
        assert state_of(r, broker, damaged) == f"5:1:{delivery.token}".encode()
        assert broker.queue_lengths(["q"]) == {"q": 4}


def test_a_fetch_of_several_queues_merges_past_a_damaged_message(
    broker: RedisBroker, r: redis.Redis
) -> None:
    low = publish(broker, 3, "a", priority=1)
    high = publish(broker, 3, "b", priority=8)
    r.hset(broker.keys.messages, f"{high[0]}:s", "8")

    got = fetch(broker, ["a", "b"], 4)

    assert [d.tag for d in got] == [*high, low[0]]  # the rank still orders the damaged one
    assert sorted(d.tag for d in fetch(broker, ["a", "b"])) == low[1:]


# -- settle, extend, purge -----------------------------------------------------------------------


def test_settling_a_message_whose_state_is_damaged_is_refused_and_settles_the_others(
    broker: RedisBroker, r: redis.Redis, clock: FakeClock, options: RedisOptions
) -> None:
    publish(broker, 3)
    d1, d2, d3 = fetch(broker, ["q"])
    r.hset(broker.keys.messages, f"{d2.tag}:s", "junk")
    before = r.hgetall(broker.keys.messages)

    assert broker.ack_many([d1, d2, d3]) == [True, False, True]

    gone = {t.encode() for d in (d1, d3) for t in (d.tag, f"{d.tag}:s")}
    assert r.hgetall(broker.keys.messages) == {k: v for k, v in before.items() if k not in gone}
    assert r.zrange(broker.keys.pending("q"), 0, -1) == [d2.tag.encode()]
    kept = snapshot(r, options)
    assert broker.requeue(d2) is False
    assert broker.dead_letter(d2, "because") is False
    assert snapshot(r, options) == kept
    clock.advance(LEASE + 1)
    (again,) = fetch(broker, ["q"])  # it comes back when its deadline passes
    assert (again.tag, again.attempt) == (d2.tag, 1)


def test_extending_a_lease_whose_state_is_damaged_reports_it_lost(
    broker: RedisBroker, r: redis.Redis, clock: FakeClock
) -> None:
    publish(broker, 2)
    d1, d2 = fetch(broker, ["q"])
    r.hset(broker.keys.messages, f"{d2.tag}:s", f"0:1:{d2.token}:")  # a token, then junk
    deadline = r.zscore(broker.keys.pending("q"), d2.tag)
    clock.advance(10)

    assert broker.extend([d1, d2], LEASE) == [True, False]

    assert r.zscore(broker.keys.pending("q"), d1.tag) == pytest.approx(clock() + LEASE)
    assert r.zscore(broker.keys.pending("q"), d2.tag) == deadline


def test_purge_deletes_a_damaged_message_and_keeps_live_leases(
    broker: RedisBroker, r: redis.Redis, options: RedisOptions
) -> None:
    publish(broker, 3)
    leased, damaged = fetch(broker, ["q"], 2)
    r.hset(broker.keys.messages, f"{damaged.tag}:s", "?")

    assert broker.purge(["q"]) == 2  # the damaged lease, and the message still ready

    assert set(r.hkeys(broker.keys.messages)) == {leased.tag.encode(), f"{leased.tag}:s".encode()}
    assert broker.ack(leased) is True
    assert snapshot(r, options).keys() <= {broker.keys.seq.encode()}


# -- a key of the wrong type: refused, every key as it was ---------------------------------------


def _leased_in(broker: RedisBroker, queue: str, clock: FakeClock) -> Delivery:
    """A message of ``queue``, leased and run out, so that its lease comes back at a fetch."""
    publish(broker, 2, queue)
    (delivery,) = broker.fetch([queue], 1, lease=1, consumer="w", timeout=0)
    return delivery


WRONG_TYPE: dict[str, tuple[str, Callable[[RedisBroker, list[Delivery]], object]]] = {
    # operation: (the key made a string, what runs into it); queue a is sound, queue b is not
    "fetch, ready:b": ("ready:b", lambda b, ds: fetch(b, ["a", "b"])),
    "fetch, messages": ("messages", lambda b, ds: fetch(b, ["a", "b"])),
    "publish, messages": ("messages", lambda b, ds: b.publish_many([message("a")])),
    "publish, ready:b": ("ready:b", lambda b, ds: b.publish_many([message("a"), message("b")])),
    "ack, pending:b": ("pending:b", lambda b, ds: b.ack_many(ds)),
    "requeue, ready:b": ("ready:b", lambda b, ds: b.requeue(ds[1])),
    "dead_letter, dead": ("dead", lambda b, ds: b.dead_letter(ds[0], "no")),
    "extend, pending:b": ("pending:b", lambda b, ds: b.extend(ds, LEASE)),
    "recover, ready:b": ("ready:b", lambda b, ds: b.recover()),
    "purge, pending:b": ("pending:b", lambda b, ds: b.purge(["a", "b"])),
}


@pytest.mark.parametrize("case", sorted(WRONG_TYPE))
def test_a_key_of_the_wrong_type_is_refused_before_any_write(
    broker: RedisBroker, r: redis.Redis, clock: FakeClock, options: RedisOptions, case: str
) -> None:
    key, operation = WRONG_TYPE[case]
    held = [_leased_in(broker, "a", clock), _leased_in(broker, "b", clock)]
    if case.startswith(("fetch", "recover")):
        clock.advance(2)  # the leases ran out: the fetch (or recover) would move them first
    saved = r.dump(broker.keys.base + key)
    r.delete(broker.keys.base + key)
    r.set(broker.keys.base + key, "not a " + key)
    before = snapshot(r, options)

    with pytest.raises(CeleriacError):
        operation(broker, held)

    assert snapshot(r, options) == before
    r.delete(broker.keys.base + key)
    if saved is not None:
        r.restore(broker.keys.base + key, 0, saved)
    clock.advance(LEASE + 2)
    assert len(fetch(broker, ["a", "b"])) == 4  # nothing was lost on the way


# -- bad arguments: refused, every key as it was -------------------------------------------------


def _op(kind: str, q: int, tag: str, value: str = "", *replace: Any) -> list[Any]:
    """One operation of settle.lua, by the token "t"."""
    return [kind, q, tag, "t", value, *(replace or ("", "", ""))]


def _script_calls(broker: RedisBroker, clock: FakeClock) -> dict[str, tuple[str, list[str], Any]]:
    """name: (script, keys, arguments), each with one bad value; queue a holds a leased message
    (tag 1, token "t") and a ready one (tag 2)."""
    k, now = broker.keys, repr(clock())
    a = queue_keys(k, ["a"])
    publish_keys = [k.seq, k.messages, k.once("x"), *a]
    fetch_keys = [k.messages, k.broadcasts_last, *a]
    settle_keys = [k.messages, k.dead, *a]
    good = [1, 0, "", b"m"]
    return {
        "publish, priority 12": ("publish", publish_keys, [now, "", 1, 12, "", b"m"]),
        "publish, priority x": ("publish", publish_keys, [now, "", *good, 1, "x", "", b"m"]),
        "publish, ETA nan": ("publish", publish_keys, [now, "", 1, 0, "nan", b"m"]),
        "publish, ETA soon": ("publish", publish_keys, [now, "", 1, 0, "soon", b"m"]),
        "publish, queue 2 of 1": ("publish", publish_keys, [now, "", 2, 0, "", b"m"]),
        "publish_once, priority x": ("publish", publish_keys, [now, "60", 1, "x", "", b"m"]),
        "publish, now yesterday": ("publish", publish_keys, ["yesterday", "", *good]),
        "fetch, limit 0": ("fetch", fetch_keys, [now, 0, 30, "t2", ""]),
        "fetch, lease x": ("fetch", fetch_keys, [now, 1, "x", "t2", ""]),
        "fetch, no token": ("fetch", fetch_keys, [now, 1, 30, "", ""]),
        "settle, kind eat": ("settle", settle_keys, [now, 1, "a", *_op("eat", 1, "1")]),
        "settle, queue 3": ("settle", settle_keys, [now, 1, "a", *_op("ack", 3, "1")]),
        "settle, ack then a replace into queue 2 of 1": (
            "settle",
            settle_keys,
            [now, 1, "a", *_op("ack", 1, "1"), *_op("replace", 1, "2", "", 2, 0, b"m")],
        ),
        "extend, lease x": ("extend", [k.messages, *a], [now, "x", 1, "1", "t"]),
        "extend, queue 9": ("extend", [k.messages, *a], [now, 30, 9, "1", "t"]),
        "broadcast, ttl x": ("broadcast", [k.broadcasts, k.broadcasts_last], [now, "x", b"p"]),
        "recover, now x": ("recover", [k.messages, *a], ["x"]),
        "purge, keys not in threes": ("purge", [k.messages, *a, k.dead], [now]),
    }


def test_every_broker_script_refuses_a_bad_argument_before_any_write(
    broker: RedisBroker, r: redis.Redis, clock: FakeClock, options: RedisOptions
) -> None:
    publish(broker, 1, "a")
    (held,) = fetch(broker, ["a"])
    publish(broker, 1, "a")
    r.hset(broker.keys.messages, f"{held.tag}:s", "0:1:t")  # the lease the calls name
    before = snapshot(r, options)

    for case, (name, keys, args) in _script_calls(broker, clock).items():
        with pytest.raises(redis.ResponseError, match="celeriac: "):
            run_script(broker, name, keys, args)
        assert snapshot(r, options) == before, case


def test_a_retry_with_a_bad_priority_or_eta_is_refused_alone_inside_a_worker_turn(
    broker: RedisBroker, r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    publish(broker, 4)
    d1, d2, d3 = fetch(broker, ["q"], 3)
    high, never = message("q"), message("q")
    object.__setattr__(high, "priority", 12)  # a task's retry options can ask for these
    object.__setattr__(never, "eta", float("inf"))
    before = {d.tag: state_of(r, broker, d.tag) for d in (d2, d3)}

    with caplog.at_level(logging.WARNING, "celeriac.brokers.redis"), broker.batch():
        assert broker.ack(d1) is True
        broker.requeue(d2, message=high)
        broker.requeue(d3, message=never, eta=never.eta)
        (fresh,) = fetch(broker, ["q"])  # the turn goes on

    assert "of message 2 refused: its ETA or priority is not valid" in caplog.text
    assert "of message 3 refused: its ETA or priority is not valid" in caplog.text
    assert state_of(r, broker, d1.tag) is None
    assert {d.tag: state_of(r, broker, d.tag) for d in (d2, d3)} == before  # still leased
    assert fresh.tag == "4"


def test_publish_refuses_a_message_it_could_not_hand_out_later(
    broker: RedisBroker, r: redis.Redis, options: RedisOptions
) -> None:
    bad = message("q")
    object.__setattr__(bad, "priority", 12)  # past any check a Message might make
    with pytest.raises(CeleriacError, match=r"priority 0\.\.9"):
        broker.publish_many([message("q"), bad])
    assert snapshot(r, options) == {}
    assert broker.publish_once(message("q"), "k", ttl=60) is True  # the key was not taken


# -- one worker turn: several scripts in one -----------------------------------------------------


def test_a_worker_turn_over_a_damaged_message_loses_nothing(
    broker: RedisBroker, backend: RedisBackend, r: redis.Redis
) -> None:
    tags = publish(broker, 4)
    (held,) = fetch(broker, ["q"], 1)
    r.hset(broker.keys.messages, f"{tags[1]}:s", "garbage")

    with broker.batch():  # store, ack and fetch: one composed script
        backend.store_many([ResultRecord("t1", states.SUCCESS, b"1")], expires=60)
        assert broker.ack_many([held]) == [True]
        fresh = fetch(broker, ["q"])

    assert sorted(d.tag for d in fresh) == tags[1:]
    assert backend.get("t1") is not None
    assert state_of(r, broker, held.tag) is None


def test_a_part_of_a_turn_that_is_refused_writes_nothing_and_stops_the_rest(
    broker: RedisBroker, backend: RedisBackend, r: redis.Redis
) -> None:
    tags = publish(broker, 3)
    d1, d2 = fetch(broker, ["q"], 2)
    r.set(broker.keys.dead, "not a list")
    pending = r.zrange(broker.keys.pending("q"), 0, -1, withscores=True)

    with pytest.raises(BrokerError, match="dead is a string"), broker.batch():
        backend.store_many([ResultRecord("t1", states.SUCCESS, b"1")], expires=60)
        broker.ack(d1)
        broker.dead_letter(d2, "poison")
        fetch(broker, ["q"])

    # The parts run in order, each whole or not at all: the result was stored and d1 acked;
    # the dead letter was refused whole; the fetch after it did not run.
    assert backend.get("t1") is not None
    assert state_of(r, broker, d1.tag) is None
    assert state_of(r, broker, d2.tag) == f"0:1:{d2.token}".encode()
    assert r.zrange(broker.keys.pending("q"), 0, -1, withscores=True) == pending[1:]
    assert r.zrange(broker.keys.ready("q"), 0, -1) == [tags[2].encode()]
    assert r.get(broker.keys.dead) == b"not a list"
    r.delete(broker.keys.dead)
    # The worker's retry of the batch: d1's lease is gone (acked), d2 is still held.
    assert broker.ack_many([d1]) == [False]
    assert broker.dead_letter(d2, "poison") is True


@pytest.mark.parametrize("damage", ["garbage state", "no body"])
def test_a_worker_runs_every_good_message_of_a_queue_with_a_damaged_one(
    options: RedisOptions, r: redis.Redis, damage: str
) -> None:
    prefix = options.global_keyprefix
    app = Celeriac(
        "x", broker=redis_test_url(), broker_transport_options={"global_keyprefix": prefix}
    )
    ran: list[int] = []

    @app.task(name="t.record")
    def record(n: int) -> int:
        ran.append(n)
        return n

    results = [record.delay(n) for n in range(6)]
    broker = app.broker
    assert isinstance(broker, RedisBroker)
    DAMAGE[damage](r, broker.keys.messages, "3")
    worker = in_process_worker(app)
    try:
        assert worker.drain() == 6  # one turn after another, none refused
    finally:
        worker.close()
    if damage == "no body":  # the intake dead-letters it; the five others ran
        assert sorted(ran) == [0, 1, 3, 4, 5]
        (letter,) = broker.dead_letters()
        assert (letter.tag, letter.body) == ("3", b"")
    else:  # its bytes are whole: it ran too
        assert sorted(ran) == list(range(6))
        assert [res.get(timeout=1) for res in results] == list(range(6))
    assert broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    app.close()


# -- the backend ---------------------------------------------------------------------------------

DAMAGED_RECORDS: dict[str, Callable[[redis.Redis, str], object]] = {
    "not a record": lambda r, key: r.set(key, "junk"),
    "final, expiry not a time": lambda r, key: r.set(key, 'soon\nSUCCESS\n{"c":"j"}\n1'),
    "a hash": lambda r, key: r.hset(key, "state", "SUCCESS"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_RECORDS))
def test_store_replaces_a_damaged_record_and_stores_the_others(
    backend: RedisBackend, r: redis.Redis, damage: str
) -> None:
    DAMAGED_RECORDS[damage](r, backend.keys.result("t2"))
    records = [ResultRecord(f"t{n}", states.SUCCESS, str(n).encode()) for n in (1, 2, 3)]

    assert backend.store_many(records, expires=60) == [True, True, True]

    assert backend.get_many(["t1", "t2", "t3"]) == {r.task_id: r for r in records}


def test_store_hands_the_record_to_a_waiting_client_whose_reply_key_is_damaged(
    backend: RedisBackend, r: redis.Redis
) -> None:
    r.sadd(backend.keys.waiting("t1"), "client")
    r.hset(backend.keys.reply("t1"), "x", "y")
    assert backend.store(ResultRecord("t1", states.SUCCESS, b"1")) is True
    assert [p[-2:] for p in r.lrange(backend.keys.reply("t1"), 0, -1)] == [b"\n1"]
    assert not r.exists(backend.keys.waiting("t1"))


@pytest.mark.parametrize("damage", sorted(DAMAGED_RECORDS))
def test_check_does_not_hand_over_a_damaged_record(
    broker: RedisBroker, backend: RedisBackend, r: redis.Redis, options: RedisOptions, damage: str
) -> None:
    key = backend.keys.result("t1")
    DAMAGED_RECORDS[damage](r, key)
    before = snapshot(r, options)
    reply = backend.keys.reply("t1")
    assert run_script(broker, "check", [key, reply], [""], "backends") == 0
    assert snapshot(r, options) == before


def test_add_to_set_keeps_the_members_when_the_expiry_is_damaged(
    backend: RedisBackend, r: redis.Redis
) -> None:
    assert backend.add_to_set("chord", "a", expires=60) == 1
    assert backend.add_to_set("chord", "b", expires=60) == 2
    r.set(backend.keys.set_expiry("chord"), "whenever")
    assert backend.add_to_set("chord", "c", expires=60) == 3
    assert backend.set_members("chord") == {"a", "b", "c"}
    r.set(backend.keys.set("chord"), "not a set")  # its members are gone already: start afresh
    assert backend.add_to_set("chord", "d", expires=60) == 1


def test_cleanup_passes_over_a_key_that_is_not_a_record(
    backend: RedisBackend, r: redis.Redis, clock: FakeClock
) -> None:
    backend.store_many([ResultRecord(f"t{n}", states.SUCCESS) for n in (1, 2)], expires=60)
    r.hset(backend.keys.result("odd"), "x", "y")
    clock.advance(61)
    assert backend.cleanup() == 2
    assert r.exists(backend.keys.result("odd")) and not r.exists(backend.keys.result("t1"))


def test_broadcast_drops_an_entry_no_consumer_could_read(
    broker: RedisBroker, r: redis.Redis
) -> None:
    r.xadd(broker.keys.broadcasts, {"e": "tomorrow", "p": "old"})
    r.xadd(broker.keys.broadcasts, {"p": "no expiry"})
    broker.broadcast(b"revoke", ttl=60)
    assert broker.read_broadcasts(None)[0] == [b"revoke"]


def test_every_backend_script_refuses_a_bad_argument_before_any_write(
    broker: RedisBroker, backend: RedisBackend, r: redis.Redis, options: RedisOptions
) -> None:
    backend.store(ResultRecord("t1", states.STARTED))
    backend.add_to_set("s", "a", expires=60)
    before = snapshot(r, options)
    k = backend.keys
    record = [k.result("t1"), k.waiting("t1"), k.reply("t1")]
    calls: dict[str, tuple[str, list[str], list[Any]]] = {
        "store, ttl x": ("store", record, ["", "x", states.SUCCESS, b"{}\n1"]),
        "store, a state of two lines": ("store", record, ["", "", "SUCCESS\nX", b"{}\n1"]),
        "store, a record short of its value": ("store", record, ["", "", states.SUCCESS]),
        "add_to_set, ttl x": ("add_to_set", [k.set("s"), k.set_expiry("s")], ["", "b", "x"]),
        "cleanup, keys not in pairs": ("cleanup", [k.result("t1")], [""]),
        "check, now x": ("check", [k.result("t1"), k.reply("t1")], ["x"]),
    }
    for case, (name, keys, args) in calls.items():
        with pytest.raises(redis.ResponseError, match="celeriac: "):
            run_script(broker, name, keys, args, "backends")
        assert snapshot(r, options) == before, case


def test_reading_control_messages_skips_a_damaged_entry(
    broker: RedisBroker, r: redis.Redis
) -> None:
    broker.broadcast(b"first", ttl=60)
    broker.broadcast(b"second", ttl=60)
    r.xadd(broker.keys.broadcasts, {"e": "tomorrow", "p": "damaged"})  # by hand, after them
    payloads, cursor = broker.read_broadcasts(None)
    assert payloads == [b"first", b"second"]
    assert broker.read_broadcasts(cursor)[0] == []  # read past, not again


@pytest.mark.parametrize("damage", ["not a record", "final, expiry not a time"])
def test_a_damaged_record_reads_as_none(backend: RedisBackend, r: redis.Redis, damage: str) -> None:
    DAMAGED_RECORDS[damage](r, backend.keys.result("t1"))
    assert backend.get("t1") is None
    assert backend.get_many(["t1"]) == {}
