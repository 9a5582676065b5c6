"""The result backend contract (``celeriac.backends.base``), run against every backend.

Every test takes the ``backend`` fixture, so it runs once per implementation in
``conftest.FACTORIES``. Expiry is driven by a :class:`FakeClock`; only the tests of ``wait``
measure real time, and they stay well under a second. SQLite-only tests sit at the end.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import threading
import time
from pathlib import Path

import pytest

from celeriac import states
from celeriac.backends.base import ResultBackend, ResultRecord
from celeriac.backends.sqlite import SqliteBackend
from celeriac.serialization import PICKLE
from support.clock import FakeClock

FINAL = sorted(states.READY_STATES)
NOT_FINAL = sorted(states.UNREADY_STATES)


def record(task_id: str = "t1", state: str = states.SUCCESS, payload: bytes = b"1") -> ResultRecord:
    return ResultRecord(task_id=task_id, state=state, payload=payload, date_done=1.5)


# -- store and get -------------------------------------------------------------------------------


def test_store_then_get_returns_every_field(backend: ResultBackend) -> None:
    stored = ResultRecord(
        task_id="task-1",
        state=states.FAILURE,
        payload=b'{"exc_type":"KeyError","exc_message":["x"]}\x00\xff',
        content_type=PICKLE,
        date_done=1_700_000_000.25,
        retries=3,
        meta={"task": "jobs.add", "children": ["a", "b"], "worker": {"host": "h", "pid": 7}},
    )

    assert backend.store(stored) is True

    assert backend.get("task-1") == stored
    assert backend.get_many(["task-1"]) == {"task-1": stored}


def test_store_then_get_keeps_the_defaults(backend: ResultBackend) -> None:
    stored = ResultRecord(task_id="task-2", state=states.STARTED)
    backend.store(stored)
    assert backend.get("task-2") == stored


def test_get_of_an_unknown_task_is_none(backend: ResultBackend) -> None:
    assert backend.get("nobody") is None
    assert backend.get_many(["nobody"]) == {}


def test_get_many_returns_only_the_records_that_exist(backend: ResultBackend) -> None:
    one, two = record("one"), record("two", states.STARTED)
    assert backend.store_many([one, two], expires=None) == [True, True]

    assert backend.get_many(["one", "missing", "two", "one"]) == {"one": one, "two": two}
    assert backend.get_many([]) == {}
    assert backend.store_many([], expires=None) == []


# -- the first final state wins ------------------------------------------------------------------


@pytest.mark.parametrize("state", FINAL)
def test_a_final_state_is_never_overwritten(backend: ResultBackend, state: str) -> None:
    first = record(state=state, payload=b'"first"')
    assert backend.store(first) is True

    for later_state in [*FINAL, *NOT_FINAL]:
        assert backend.store(record(state=later_state, payload=b'"later"')) is False

    assert backend.get("t1") == first


def test_the_first_final_state_in_one_batch_wins(backend: ResultBackend) -> None:
    success, failure = record(payload=b'"ok"'), record(state=states.FAILURE, payload=b'"no"')

    assert backend.store_many([success, failure], expires=None) == [True, False]

    assert backend.get("t1") == success


@pytest.mark.parametrize("state", NOT_FINAL)
def test_a_state_that_is_not_final_is_overwritten(backend: ResultBackend, state: str) -> None:
    assert backend.store(record(state=state, payload=b'"early"')) is True
    assert backend.store(record(state=states.RETRY, payload=b'"retry"')) is True
    assert backend.store(record(state=state, payload=b'"again"')) is True
    final = record(payload=b'"done"')

    assert backend.store(final) is True

    assert backend.get("t1") == final


# -- expiry --------------------------------------------------------------------------------------


def test_an_expired_record_is_invisible(backend: ResultBackend, clock: FakeClock) -> None:
    backend.store(record(), expires=10)
    kept = record("kept")
    backend.store(kept)

    clock.advance(9.9)
    assert backend.get("t1") is not None
    clock.advance(0.1)

    assert backend.get("t1") is None
    assert backend.get_many(["t1", "kept"]) == {"kept": kept}
    assert backend.wait("t1", timeout=0) is None


def test_cleanup_deletes_and_counts_the_expired_records(
    backend: ResultBackend, clock: FakeClock
) -> None:
    backend.store_many([record("a"), record("b", states.STARTED)], expires=10)
    backend.store(record("later"), expires=100)
    backend.store(record("never"))

    assert backend.cleanup() == 0
    clock.advance(10)

    assert backend.cleanup() == 2
    assert backend.cleanup() == 0
    assert set(backend.get_many(["a", "b", "later", "never"])) == {"later", "never"}
    clock.advance(1_000_000)
    assert backend.cleanup() == 1
    assert set(backend.get_many(["a", "b", "later", "never"])) == {"never"}


def test_an_expired_final_record_may_be_replaced(backend: ResultBackend, clock: FakeClock) -> None:
    backend.store(record(payload=b'"old"'), expires=10)
    clock.advance(10)
    replacement = record(state=states.FAILURE, payload=b'"new"')

    assert backend.store(replacement, expires=10) is True

    assert backend.get("t1") == replacement


def test_expiry_counts_from_the_latest_store(backend: ResultBackend, clock: FakeClock) -> None:
    backend.store(record(state=states.STARTED), expires=10)
    clock.advance(5)
    backend.store(record(), expires=10)

    clock.advance(9)
    assert backend.get("t1") is not None
    clock.advance(1)
    assert backend.get("t1") is None


# -- forget --------------------------------------------------------------------------------------


def test_forget_deletes_only_the_named_records(backend: ResultBackend) -> None:
    backend.store_many([record("a"), record("b")], expires=None)

    backend.forget(["a", "unknown"])
    backend.forget([])

    assert set(backend.get_many(["a", "b"])) == {"b"}
    again = record("a", states.FAILURE)
    assert backend.store(again) is True
    assert backend.get("a") == again


# -- wait ----------------------------------------------------------------------------------------


def test_wait_returns_at_once_for_a_final_record(backend: ResultBackend) -> None:
    final = record()
    backend.store(final)

    started = time.monotonic()
    assert backend.wait("t1", timeout=5) == final
    assert backend.wait("t1", timeout=None) == final
    assert time.monotonic() - started < 0.5


def test_wait_returns_the_latest_record_after_its_timeout(backend: ResultBackend) -> None:
    running = record(state=states.STARTED)
    backend.store(running)

    started = time.monotonic()
    assert backend.wait("t1", timeout=0.05) == running
    assert backend.wait("unknown", timeout=0.05) is None
    assert 0.08 <= time.monotonic() - started < 1.0


def test_wait_is_woken_when_another_thread_stores_a_final_record(
    backend: ResultBackend,
) -> None:
    final = record(payload=b'"done"')

    def worker() -> None:
        time.sleep(0.05)
        backend.store(record(state=states.STARTED))
        time.sleep(0.1)
        backend.store(final)

    thread = threading.Thread(target=worker)
    started = time.monotonic()
    thread.start()
    try:
        result = backend.wait("t1", timeout=5)
    finally:
        thread.join()

    assert result == final
    assert time.monotonic() - started < 1.0


# -- closing -------------------------------------------------------------------------------------


def test_the_backend_can_be_used_again_after_close(backend: ResultBackend) -> None:
    backend.store(record("before"))
    backend.close()

    backend.store(record("after"))

    assert set(backend.get_many(["before", "after"])) == {"before", "after"}
    backend.close()
    backend.close()


# -- SQLite only ---------------------------------------------------------------------------------

RACED_IDS = [f"race-{n}" for n in range(200)]


def _store_finals(path: str, start: multiprocessing.synchronize.Barrier, name: str) -> None:
    """Child process: store a final result of its own for every raced id; write what won.

    The second process walks the ids backwards, so that the two meet somewhere in the middle
    and both win some of them.
    """
    backend = SqliteBackend(path)
    order = RACED_IDS if name == "first" else RACED_IDS[::-1]
    backend.get(order[0])  # connect before the start line
    start.wait()
    won = [
        task_id
        for task_id in order
        if backend.store(record(task_id, states.SUCCESS, payload=name.encode()))
    ]
    Path(path).with_name(name).write_text("\n".join(won))


def test_sqlite_two_processes_racing_to_a_final_state_one_wins(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    backend = SqliteBackend(path)
    backend.store_many([record(t, states.STARTED) for t in RACED_IDS], expires=None)
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    names = ["first", "second"]
    children = [context.Process(target=_store_finals, args=(path, start, n)) for n in names]
    for child in children:
        child.start()
    for child in children:
        child.join(60)

    assert [c.exitcode for c in children] == [0, 0]
    won = {n: set((tmp_path / n).read_text().split()) for n in names}
    assert won["first"].isdisjoint(won["second"])
    assert won["first"] | won["second"] == set(RACED_IDS)
    stored = backend.get_many(RACED_IDS)
    for name in names:
        assert {stored[t].payload for t in won[name]} <= {name.encode()}
    assert backend.store(record(RACED_IDS[0], states.FAILURE)) is False
    backend.close()


# -- workflow state: sets and documents ---------------------------------------------------------


def test_add_to_set_counts_distinct_members(backend: ResultBackend) -> None:
    assert backend.add_to_set("chord:1", "a", expires=60) == 1
    assert backend.add_to_set("chord:1", "b", expires=60) == 2
    assert backend.add_to_set("chord:1", "a", expires=60) == 2
    assert backend.add_to_set("chord:2", "a", expires=60) == 1
    assert backend.set_members("chord:1") == {"a", "b"}
    assert backend.set_members("nothing") == set()


def test_a_set_expires_after_its_latest_change(backend: ResultBackend, clock: FakeClock) -> None:
    backend.add_to_set("s", "a", expires=10)
    clock.advance(8)
    backend.add_to_set("s", "b", expires=10)
    clock.advance(8)
    assert backend.set_members("s") == {"a", "b"}
    clock.advance(3)
    assert backend.set_members("s") == set()
    assert backend.add_to_set("s", "c", expires=10) == 1


def test_add_to_set_from_many_threads_counts_each_member_once(backend: ResultBackend) -> None:
    sizes: list[int] = []
    barrier = threading.Barrier(10)

    def add(member: str) -> None:
        barrier.wait()
        sizes.append(backend.add_to_set("race", member, expires=60))

    threads = [threading.Thread(target=add, args=(f"m{i % 5}",)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(sizes) == 5
    assert backend.set_members("race") == {f"m{i}" for i in range(5)}


def test_documents_roundtrip_replace_and_expire(backend: ResultBackend, clock: FakeClock) -> None:
    assert backend.get_document("run:1") is None
    backend.put_document("run:1", {"nodes": {"a": [1, 2]}, "name": "x"}, expires=10)
    assert backend.get_document("run:1") == {"nodes": {"a": [1, 2]}, "name": "x"}
    backend.put_document("run:1", {"name": "y"}, expires=10)
    assert backend.get_document("run:1") == {"name": "y"}
    clock.advance(11)
    assert backend.get_document("run:1") is None


def test_cleanup_removes_expired_sets_and_documents(
    backend: ResultBackend, clock: FakeClock
) -> None:
    backend.add_to_set("s", "a", expires=1)
    backend.put_document("d", {"k": 1}, expires=1)
    backend.put_document("kept", {"k": 2}, expires=None)
    clock.advance(2)
    assert backend.cleanup() >= 2
    assert backend.get_document("kept") == {"k": 2}
