"""The broker contract (``celeriac.brokers.base``), asserted once and run against every broker.

Every test takes the ``broker`` fixture, so it runs once per implementation in
``conftest.FACTORIES``. Time is a :class:`FakeClock`: leases and ETAs expire when a test moves
the clock, never by sleeping. Tests for one implementation only sit at the end of the file.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.synchronize
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest

from celeriac.brokers.base import Broker, Delivery
from celeriac.brokers.sqlite import SqliteBroker
from celeriac.message import Message
from support.clock import FakeClock

LEASE = 30.0


def make_message(
    queue: str = "q", *, priority: int = 0, eta: float | None = None, body: bytes = b"[[],{}]"
) -> Message:
    """A message with a unique id, so that every encoded body is unique too."""
    return Message(
        id=uuid.uuid4().hex, task="tests.noop", body=body, queue=queue, priority=priority, eta=eta
    )


def fetch(
    broker: Broker, queues: tuple[str, ...] = ("q",), limit: int = 100, lease: float = LEASE
) -> list[Delivery]:
    """Fetch without waiting."""
    return broker.fetch(list(queues), limit, lease=lease, consumer="tester", timeout=0)


def bodies(deliveries: list[Delivery]) -> list[bytes]:
    return [d.body for d in deliveries]


def fetch_one(broker: Broker, queues: tuple[str, ...] = ("q",), lease: float = LEASE) -> Delivery:
    """Fetch exactly one delivery (and fail the test otherwise)."""
    deliveries = fetch(broker, queues, limit=1, lease=lease)
    assert len(deliveries) == 1
    return deliveries[0]


# -- publish and fetch ---------------------------------------------------------------------------


def test_fetch_from_an_empty_queue_returns_nothing(broker: Broker) -> None:
    assert fetch(broker) == []


def test_publish_then_fetch_returns_the_encoded_message(broker: Broker) -> None:
    message = make_message()
    broker.publish(message)

    (delivery,) = fetch(broker)

    assert delivery.body == message.encode()
    assert Message.decode(delivery.body) == message
    assert delivery.queue == "q"
    assert delivery.attempt == 1
    assert delivery.tag
    assert delivery.token


def test_publish_many_keeps_the_order_of_publication(broker: Broker) -> None:
    messages = [make_message() for _ in range(5)]
    broker.publish_many(messages)

    deliveries = fetch(broker)

    assert bodies(deliveries) == [m.encode() for m in messages]
    assert len({d.tag for d in deliveries}) == 5


def test_publish_many_of_nothing_stores_nothing(broker: Broker) -> None:
    broker.publish_many([])
    assert broker.queue_lengths(["q"]) == {"q": 0}


def test_highest_priority_first_then_oldest_first(broker: Broker) -> None:
    low_1, high, low_2, middle, high_2 = (make_message(priority=p) for p in (0, 9, 0, 5, 9))
    broker.publish(low_1)
    broker.publish_many([high, low_2])
    broker.publish_many([middle, high_2])

    deliveries = fetch(broker)

    assert bodies(deliveries) == [m.encode() for m in (high, high_2, middle, low_1, low_2)]


def test_queues_are_isolated(broker: Broker) -> None:
    in_a, in_b = make_message("a"), make_message("b")
    broker.publish_many([in_a, in_b])

    assert bodies(fetch(broker, ("a",))) == [in_a.encode()]
    assert fetch(broker, ("a",)) == []
    assert fetch(broker, ("c",)) == []
    (delivery,) = fetch(broker, ("b",))
    assert delivery.body == in_b.encode()
    assert delivery.queue == "b"


def test_fetch_from_several_queues_orders_across_them(broker: Broker) -> None:
    a_low, b_low, a_high, c_high = (
        make_message("a"),
        make_message("b"),
        make_message("a", priority=9),
        make_message("c", priority=9),
    )
    broker.publish_many([a_low, b_low, a_high, c_high])

    deliveries = fetch(broker, ("a", "b"))

    assert bodies(deliveries) == [a_high.encode(), a_low.encode(), b_low.encode()]
    assert [d.queue for d in deliveries] == ["a", "a", "b"]
    assert broker.queue_lengths(["c"]) == {"c": 1}


def test_fetch_respects_the_limit(broker: Broker) -> None:
    messages = [make_message() for _ in range(5)]
    broker.publish_many(messages)

    first = fetch(broker, limit=2)
    second = fetch(broker, limit=2)
    rest = fetch(broker, limit=10)

    assert bodies(first) == [m.encode() for m in messages[:2]]
    assert bodies(second) == [m.encode() for m in messages[2:4]]
    assert bodies(rest) == [messages[4].encode()]


def test_fetch_with_a_limit_of_zero_takes_nothing(broker: Broker) -> None:
    broker.publish(make_message())

    assert broker.fetch(["q"], 0, lease=LEASE, consumer="tester", timeout=0) == []

    assert fetch_one(broker).attempt == 1


# -- ETA -----------------------------------------------------------------------------------------


def test_a_message_with_a_future_eta_waits_until_the_clock_passes_it(
    broker: Broker, clock: FakeClock
) -> None:
    delayed = make_message(eta=clock.now + 10)
    broker.publish(delayed)

    assert fetch(broker) == []
    clock.advance(9.5)
    assert fetch(broker) == []
    clock.advance(0.5)
    assert bodies(fetch(broker)) == [delayed.encode()]


def test_a_delayed_message_does_not_hold_back_ready_ones(broker: Broker, clock: FakeClock) -> None:
    delayed = make_message(priority=9, eta=clock.now + 10)
    ready = make_message()
    broker.publish_many([delayed, ready])

    assert bodies(fetch(broker)) == [ready.encode()]


def test_a_message_with_a_past_eta_is_ready_now(broker: Broker, clock: FakeClock) -> None:
    message = make_message(eta=clock.now - 60)
    broker.publish(message)
    assert bodies(fetch(broker)) == [message.encode()]


# -- leases --------------------------------------------------------------------------------------


def test_a_leased_message_is_not_fetched_again_while_the_lease_lives(
    broker: Broker, clock: FakeClock
) -> None:
    broker.publish(make_message())
    fetch_one(broker, lease=10)

    assert fetch(broker) == []
    clock.advance(9.9)
    assert fetch(broker) == []


def test_a_message_comes_back_after_its_lease_deadline(broker: Broker, clock: FakeClock) -> None:
    message = make_message()
    broker.publish(message)
    first = fetch_one(broker, lease=10)

    clock.advance(10)
    second = fetch_one(broker)

    assert second.body == message.encode()
    assert second.tag == first.tag
    assert second.token != first.token
    assert (first.attempt, second.attempt) == (1, 2)
    clock.advance(LEASE)
    assert fetch_one(broker).attempt == 3


def test_other_messages_are_fetched_while_one_is_leased(broker: Broker) -> None:
    messages = [make_message() for _ in range(4)]
    broker.publish_many(messages)

    first = fetch(broker, limit=2)
    second = fetch(broker, limit=2)

    assert bodies(first + second) == [m.encode() for m in messages]


# -- ack -----------------------------------------------------------------------------------------


def test_ack_removes_the_message_for_good(broker: Broker, clock: FakeClock) -> None:
    broker.publish(make_message())
    delivery = fetch_one(broker, lease=10)

    assert broker.ack(delivery) is True

    assert broker.queue_lengths(["q"]) == {"q": 0}
    clock.advance(60)
    assert fetch(broker) == []
    assert broker.ack(delivery) is False


def test_ack_with_a_stale_token_fails_and_keeps_the_new_holders_message(
    broker: Broker, clock: FakeClock
) -> None:
    broker.publish(make_message())
    stale = fetch_one(broker, lease=10)
    clock.advance(11)
    current = fetch_one(broker, lease=10)

    assert broker.ack(stale) is False

    assert broker.queue_lengths(["q"]) == {"q": 1}
    assert broker.ack(current) is True
    assert broker.queue_lengths(["q"]) == {"q": 0}


def test_ack_many_reports_each_delivery(broker: Broker, clock: FakeClock) -> None:
    broker.publish_many([make_message(), make_message()])
    stale, other = fetch(broker, lease=10)
    clock.advance(11)
    broker.recover()

    assert broker.ack_many([]) == []
    assert broker.ack_many([stale, other]) == [False, False]
    retaken, reother = fetch(broker)
    assert broker.ack_many([stale, retaken, reother]) == [False, True, True]
    assert broker.queue_lengths(["q"]) == {"q": 0}


# -- extend --------------------------------------------------------------------------------------


def test_extend_pushes_the_lease_deadline(broker: Broker, clock: FakeClock) -> None:
    broker.publish(make_message())
    delivery = fetch_one(broker, lease=10)

    clock.advance(5)
    assert broker.extend([delivery], 30) == [True]

    clock.advance(10)  # past the first deadline (10), before the new one (35)
    assert fetch(broker) == []
    clock.advance(20)  # 35: the extended lease ran out
    assert fetch_one(broker).attempt == 2


def test_extend_with_a_stale_token_fails_and_leaves_the_new_lease_alone(
    broker: Broker, clock: FakeClock
) -> None:
    broker.publish(make_message())
    stale = fetch_one(broker, lease=10)
    clock.advance(11)
    current = fetch_one(broker, lease=10)

    assert broker.extend([stale, current], 1000) == [False, True]
    assert broker.extend([stale], 5000) == [False]
    assert broker.extend([], 10) == []

    clock.advance(999)
    assert fetch(broker) == []
    clock.advance(2)
    assert fetch_one(broker).attempt == 3


# -- requeue -------------------------------------------------------------------------------------


def test_requeue_makes_the_message_ready_now_and_keeps_the_attempt_count(
    broker: Broker,
) -> None:
    message = make_message()
    broker.publish(message)
    first = fetch_one(broker)

    assert broker.requeue(first) is True

    second = fetch_one(broker)
    assert second.body == message.encode()
    assert second.tag == first.tag
    assert second.token != first.token
    assert second.attempt == 2
    assert broker.ack(first) is False
    assert broker.ack(second) is True


def test_a_requeued_message_keeps_its_place_among_older_and_newer_ones(broker: Broker) -> None:
    older, newer = make_message(), make_message()
    broker.publish(older)
    delivery = fetch_one(broker)
    broker.publish(newer)

    broker.requeue(delivery)

    assert bodies(fetch(broker)) == [older.encode(), newer.encode()]


def test_requeue_at_an_eta_delays_the_message(broker: Broker, clock: FakeClock) -> None:
    broker.publish(make_message())
    delivery = fetch_one(broker)

    assert broker.requeue(delivery, eta=clock.now + 20) is True

    assert broker.queue_lengths(["q"]) == {"q": 1}
    clock.advance(19)
    assert fetch(broker) == []
    clock.advance(1)
    assert fetch_one(broker).attempt == 2


def test_requeue_with_a_replacement_message_replaces_it_and_restarts_attempts(
    broker: Broker, clock: FakeClock
) -> None:
    broker.publish(make_message())
    fetch_one(broker, lease=10)
    clock.advance(10)
    delivery = fetch_one(broker)
    assert delivery.attempt == 2
    retry = make_message(body=b'[[1],{"retry":true}]')

    assert broker.requeue(delivery, message=retry, eta=clock.now + 5) is True

    assert fetch(broker) == []
    clock.advance(5)
    again = fetch_one(broker)
    assert again.body == retry.encode()
    assert again.attempt == 1


def test_requeue_with_a_replacement_message_moves_it_to_its_queue_and_priority(
    broker: Broker,
) -> None:
    broker.publish_many([make_message(), make_message("other", priority=5)])
    delivery = fetch_one(broker)
    retry = make_message("other", priority=9)

    assert broker.requeue(delivery, message=retry) is True

    assert fetch(broker) == []
    deliveries = fetch(broker, ("other",))
    assert deliveries[0].body == retry.encode()
    assert deliveries[0].queue == "other"
    assert len(deliveries) == 2


def test_requeue_with_a_stale_token_fails(broker: Broker, clock: FakeClock) -> None:
    original = make_message()
    broker.publish(original)
    stale = fetch_one(broker, lease=10)
    clock.advance(11)
    current = fetch_one(broker, lease=10)

    assert broker.requeue(stale) is False
    assert broker.requeue(stale, message=make_message()) is False

    assert fetch(broker) == []  # still leased by the current holder
    assert broker.ack(current) is True
    assert current.body == original.encode()


# -- dead letters --------------------------------------------------------------------------------


def test_dead_letter_moves_the_message_out_of_the_queue(broker: Broker, clock: FakeClock) -> None:
    first, second = make_message("a"), make_message("b")
    broker.publish_many([first, second])
    d_first, d_second = fetch(broker, ("a", "b"), lease=10)

    assert broker.dead_letter(d_first, "boom") is True
    clock.advance(1)
    assert broker.dead_letter(d_second, "bang") is True

    newest, oldest = broker.dead_letters()
    assert (newest.tag, newest.queue, newest.body, newest.reason, newest.dead_at) == (
        d_second.tag,
        "b",
        second.encode(),
        "bang",
        clock.now,
    )
    assert (oldest.tag, oldest.queue, oldest.body, oldest.reason, oldest.dead_at) == (
        d_first.tag,
        "a",
        first.encode(),
        "boom",
        clock.now - 1,
    )
    assert [d.reason for d in broker.dead_letters(limit=1)] == ["bang"]
    assert broker.queue_lengths(["a", "b"]) == {"a": 0, "b": 0}
    clock.advance(60)
    assert fetch(broker, ("a", "b")) == []
    assert broker.ack(d_first) is False


def test_dead_letters_is_empty_at_first(broker: Broker) -> None:
    assert broker.dead_letters() == []


def test_dead_letter_with_a_stale_token_fails(broker: Broker, clock: FakeClock) -> None:
    broker.publish(make_message())
    stale = fetch_one(broker, lease=10)
    clock.advance(11)
    current = fetch_one(broker, lease=10)

    assert broker.dead_letter(stale, "too late") is False

    assert broker.dead_letters() == []
    assert broker.queue_lengths(["q"]) == {"q": 1}
    assert broker.dead_letter(current, "now") is True


# -- recover, queue lengths, purge ---------------------------------------------------------------


def test_recover_counts_the_expired_leases(broker: Broker, clock: FakeClock) -> None:
    broker.publish_many([make_message() for _ in range(4)])
    acked, lost_1, lost_2 = fetch(broker, limit=3, lease=10)
    live = fetch_one(broker, lease=100)
    broker.ack(acked)

    assert broker.recover() == 0
    clock.advance(10)
    assert broker.recover() == 2
    assert broker.recover() == 0

    assert broker.ack(lost_1) is False
    assert broker.extend([lost_2], 10) == [False]
    assert {d.attempt for d in fetch(broker)} == {2}
    assert broker.ack(live) is True


def test_queue_lengths_count_ready_delayed_and_leased_messages(
    broker: Broker, clock: FakeClock
) -> None:
    broker.publish_many([make_message("a"), make_message("a")])
    fetch_one(broker, ("a",))
    broker.publish_many([make_message("a", eta=clock.now + 60), make_message("b")])

    assert broker.queue_lengths(["a", "b", "c"]) == {"a": 3, "b": 1, "c": 0}
    assert broker.queue_lengths(["b"]) == {"b": 1}


def test_purge_deletes_every_message_not_under_a_live_lease(
    broker: Broker, clock: FakeClock
) -> None:
    broker.publish_many([make_message(), make_message()])
    expired = fetch_one(broker, lease=5)
    live = fetch_one(broker, lease=100)
    broker.publish_many([make_message(), make_message(eta=clock.now + 60), make_message("other")])
    clock.advance(5)

    assert broker.purge(["q"]) == 3  # ready, delayed, and the one whose lease ran out

    assert broker.queue_lengths(["q", "other"]) == {"q": 1, "other": 1}
    assert broker.ack(expired) is False
    assert broker.ack(live) is True
    assert broker.purge(["q"]) == 0


# -- broadcasts ----------------------------------------------------------------------------------


def test_read_broadcasts_returns_all_kept_then_only_new_ones(broker: Broker) -> None:
    empty, start = broker.read_broadcasts(None)
    assert empty == []

    broker.broadcast(b"one")
    broker.broadcast(b"two")
    assert broker.read_broadcasts(start)[0] == [b"one", b"two"]
    everything, cursor = broker.read_broadcasts(None)
    assert everything == [b"one", b"two"]

    assert broker.read_broadcasts(cursor) == ([], cursor)
    broker.broadcast(b"three")
    fresh, cursor = broker.read_broadcasts(cursor)
    assert fresh == [b"three"]
    assert broker.read_broadcasts(cursor)[0] == []
    assert broker.read_broadcasts(None)[0] == [b"one", b"two", b"three"]


def test_broadcasts_expire_after_their_ttl(broker: Broker, clock: FakeClock) -> None:
    _, cursor = broker.read_broadcasts(None)
    broker.broadcast(b"short", ttl=5)
    broker.broadcast(b"long", ttl=60)

    clock.advance(4)
    assert broker.read_broadcasts(None)[0] == [b"short", b"long"]
    clock.advance(1)
    assert broker.read_broadcasts(None)[0] == [b"long"]
    assert broker.read_broadcasts(cursor)[0] == [b"long"]
    broker.broadcast(b"later")  # storing a new one may drop expired ones
    assert broker.read_broadcasts(None)[0] == [b"long", b"later"]
    clock.advance(60)
    assert broker.read_broadcasts(None)[0] == [b"later"]


# -- batches -------------------------------------------------------------------------------------


def test_calls_inside_a_batch_take_effect(broker: Broker, clock: FakeClock) -> None:
    broker.publish_many([make_message(), make_message(), make_message()])
    acked, requeued, dead = fetch(broker, lease=10)
    retry = make_message()

    with broker.batch():
        assert broker.ack(acked) is True
        assert broker.ack(acked) is False
        assert broker.requeue(requeued, message=retry) is True
        assert broker.dead_letter(dead, "in a batch") is True
        broker.publish(make_message("other"))

    assert broker.queue_lengths(["q", "other"]) == {"q": 1, "other": 1}
    assert bodies(fetch(broker)) == [retry.encode()]
    assert [d.reason for d in broker.dead_letters()] == ["in a batch"]
    clock.advance(60)
    assert bodies(fetch(broker)) == [retry.encode()]


# -- waiting and closing -------------------------------------------------------------------------


def test_a_blocking_fetch_returns_as_soon_as_a_message_is_published(broker: Broker) -> None:
    message = make_message()
    publisher = threading.Timer(0.1, broker.publish, [message])
    started = time.monotonic()
    publisher.start()
    try:
        deliveries = broker.fetch(["q"], 10, lease=LEASE, consumer="waiter", timeout=5)
    finally:
        publisher.join()
    elapsed = time.monotonic() - started

    assert bodies(deliveries) == [message.encode()]
    assert elapsed < 1.0


def test_a_blocking_fetch_gives_up_after_its_timeout(broker: Broker) -> None:
    started = time.monotonic()
    assert broker.fetch(["q"], 10, lease=LEASE, consumer="waiter", timeout=0.05) == []
    assert 0.04 <= time.monotonic() - started < 1.0


def test_the_broker_can_be_used_again_after_close(broker: Broker) -> None:
    before, after = make_message(), make_message()
    broker.publish(before)
    broker.close()

    broker.publish(after)
    deliveries = fetch(broker)
    broker.close()

    assert bodies(deliveries) == [before.encode(), after.encode()]
    assert broker.ack_many(deliveries) == [True, True]
    broker.close()
    broker.close()


class _Unparseable(Message):
    """A message whose wire bytes are not a celeriac message at all."""

    def encode(self) -> bytes:
        return b"\xff\x00not a message\n\x80" + self.id.encode()


def test_the_broker_never_parses_the_bytes_it_stores(broker: Broker) -> None:
    garbage = _Unparseable(id="x", task="t", body=b"", queue="q", priority=3)
    broker.publish_many([garbage, make_message()])

    first, _ = fetch(broker)

    assert first.body == garbage.encode()
    assert broker.dead_letter(first, "malformed") is True
    assert broker.dead_letters()[0].body == garbage.encode()


@pytest.mark.parametrize("count", [1, 401, 900])
def test_big_batches_are_settled_whole(broker: Broker, count: int) -> None:
    broker.publish_many([make_message() for _ in range(count)])
    deliveries = fetch(broker, limit=count)

    assert broker.extend(deliveries, 60) == [True] * count
    assert broker.ack_many(deliveries) == [True] * count
    assert broker.queue_lengths(["q"]) == {"q": 0}


# -- SQLite only ---------------------------------------------------------------------------------


def _consume(path: str, start: multiprocessing.synchronize.Barrier, out: str) -> None:
    """Child process: fetch in small batches and ack until the queue is empty."""
    broker = SqliteBroker(path)
    broker.queue_lengths(["q"])  # connect before the start line
    start.wait()
    seen: list[str] = []
    while True:
        deliveries = broker.fetch(["q"], 25, lease=300, consumer=out, timeout=0)
        if not deliveries:
            break
        seen.extend(Message.decode(d.body).id for d in deliveries)
        if not all(broker.ack_many(deliveries)):
            raise SystemExit(3)
    Path(out).write_text("\n".join(seen))


def test_sqlite_consumers_in_several_processes_never_share_a_message(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    publisher = SqliteBroker(path)
    messages = [make_message() for _ in range(2000)]
    publisher.publish_many(messages[:1000])
    for message in messages[1000:]:
        publisher.publish(message)
    context = multiprocessing.get_context("fork")
    start = context.Barrier(3)
    outputs = [str(tmp_path / f"consumer-{n}.txt") for n in range(3)]
    workers = [context.Process(target=_consume, args=(path, start, out)) for out in outputs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)

    assert [w.exitcode for w in workers] == [0, 0, 0]
    seen = [line for out in outputs for line in Path(out).read_text().splitlines()]
    assert len(seen) == len(messages)
    assert set(seen) == {m.id for m in messages}
    assert publisher.queue_lengths(["q"]) == {"q": 0}
    publisher.close()


def test_sqlite_delivers_bytes_written_by_another_producer_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    broker = SqliteBroker(str(path))
    broker.publish(make_message())
    garbage = b"\xff\x00not a message\n\x80"
    with contextlib.closing(sqlite3.connect(path)) as other_producer, other_producer:
        other_producer.execute("UPDATE celeriac_messages SET body = ?", [garbage])

    (delivery,) = fetch(broker)

    assert delivery.body == garbage
    assert broker.dead_letter(delivery, "malformed") is True
    assert broker.dead_letters()[0].body == garbage
    broker.close()


# -- publish_once ----------------------------------------------------------------------------------


def test_publish_once_enqueues_a_key_only_once(broker: Broker) -> None:
    first, second = make_message(), make_message()
    assert broker.publish_once(first, "chord-1:body", ttl=60) is True
    assert broker.publish_once(second, "chord-1:body", ttl=60) is False
    assert bodies(fetch(broker)) == [first.encode()]


def test_publish_once_remembers_the_key_after_the_message_is_consumed(broker: Broker) -> None:
    assert broker.publish_once(make_message(), "k", ttl=60)
    (delivery,) = fetch(broker)
    assert broker.ack(delivery)
    assert broker.publish_once(make_message(), "k", ttl=60) is False
    assert fetch(broker) == []


def test_publish_once_forgets_a_key_after_its_ttl(broker: Broker, clock: FakeClock) -> None:
    assert broker.publish_once(make_message(), "k", ttl=10)
    clock.advance(11)
    again = make_message()
    assert broker.publish_once(again, "k", ttl=10) is True
    assert again.encode() in bodies(fetch(broker))


def test_publish_once_keys_are_independent(broker: Broker) -> None:
    assert broker.publish_once(make_message(), "a", ttl=60)
    assert broker.publish_once(make_message(), "b", ttl=60)
    assert len(fetch(broker)) == 2


def test_publish_once_from_many_threads_enqueues_one(broker: Broker) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def racer() -> None:
        barrier.wait()
        results.append(broker.publish_once(make_message(), "race", ttl=60))

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert len(fetch(broker)) == 1


# -- requeueing and deleting dead letters ----------------------------------------------------------


def _bury(broker: Broker, *queues: str) -> list[Message]:
    """Publish one message per queue named, fetch them and dead-letter each (oldest first)."""
    messages = [make_message(queue) for queue in queues]
    broker.publish_many(messages)
    for delivery in fetch(broker, tuple(sorted(set(queues)))):
        assert broker.dead_letter(delivery, "gave up") is True
    return messages


def test_requeue_dead_letters_by_tag_puts_them_back_in_their_queue(broker: Broker) -> None:
    first, _ = _bury(broker, "a", "b")
    newest, oldest = broker.dead_letters()
    assert broker.requeue_dead_letters([oldest.tag]) == 1
    assert [d.tag for d in broker.dead_letters()] == [newest.tag]
    back = fetch_one(broker, ("a", "b"))
    assert (back.queue, back.body, back.attempt) == ("a", first.encode(), 1)
    assert broker.ack(back) is True
    assert broker.queue_lengths(["a", "b"]) == {"a": 0, "b": 0}


def test_requeue_every_dead_letter_keeps_their_order(broker: Broker) -> None:
    messages = _bury(broker, "q", "q", "q")
    assert broker.requeue_dead_letters(None) == 3
    assert broker.dead_letters() == []
    assert bodies(fetch(broker)) == [m.encode() for m in messages]


def test_requeue_dead_letters_into_another_queue(broker: Broker) -> None:
    (message,) = _bury(broker, "a")
    assert broker.requeue_dead_letters(None, queue="elsewhere") == 1
    assert fetch(broker, ("a",)) == []
    assert bodies(fetch(broker, ("elsewhere",))) == [message.encode()]


def test_requeue_dead_letters_skips_unknown_tags_and_twice_is_once(broker: Broker) -> None:
    _bury(broker, "q")
    (letter,) = broker.dead_letters()
    assert broker.requeue_dead_letters(["no-such-tag"]) == 0
    assert broker.requeue_dead_letters([]) == 0
    assert broker.requeue_dead_letters([letter.tag]) == 1
    assert broker.requeue_dead_letters([letter.tag]) == 0
    assert broker.queue_lengths(["q"]) == {"q": 1}


def test_a_requeued_dead_letter_that_dies_again_is_a_new_dead_letter(broker: Broker) -> None:
    _bury(broker, "q")
    (letter,) = broker.dead_letters()
    broker.requeue_dead_letters([letter.tag])
    assert broker.dead_letter(fetch_one(broker), "again") is True
    (again,) = broker.dead_letters()
    assert again.tag != letter.tag and again.reason == "again"


def test_delete_dead_letters_by_tag_and_all(broker: Broker) -> None:
    _bury(broker, "q", "q", "q")
    newest, middle, oldest = broker.dead_letters()
    assert broker.delete_dead_letters([middle.tag, "no-such-tag"]) == 1
    assert [d.tag for d in broker.dead_letters()] == [newest.tag, oldest.tag]
    assert broker.delete_dead_letters([]) == 0
    assert broker.delete_dead_letters(None) == 2
    assert broker.dead_letters() == []
    assert broker.queue_lengths(["q"]) == {"q": 0}
    assert broker.delete_dead_letters(None) == 0


def test_redis_dead_letters_that_are_damaged_are_skipped_and_kept() -> None:
    from celeriac.brokers.redis import RedisBroker
    from support.stores import redis_test_options, redis_test_url

    broker = RedisBroker(redis_test_url(), redis_test_options())
    try:
        _bury(broker, "q")
        broker.db.direct().lpush(broker.keys.dead, b"no newline", b"{not json\nbytes")
        (letter,) = broker.dead_letters()
        assert broker.requeue_dead_letters(None) == 1
        assert broker.dead_letters() == [] and broker.db.direct().llen(broker.keys.dead) == 2
        assert broker.queue_lengths(["q"]) == {"q": 1}
        assert broker.delete_dead_letters([letter.tag]) == 0
    finally:
        broker.close()
