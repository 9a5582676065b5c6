"""What makes sending cheap keeps every promise: task ids are version 4 UUIDs that never
repeat (not even in a forked child), a big group's build pauses the garbage collector only
while it lasts and gives it back as it was, and a call without arguments sends the body that
serializing them would."""

from __future__ import annotations

import gc
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celeriac, group
from celeriac.backends.memory import MemoryBackend
from celeriac.brokers.memory import MemoryBroker
from celeriac.exceptions import MessageTooLarge
from celeriac.ids import PAUSE_COLLECTOR, new_ids
from celeriac.message import Message
from celeriac.middleware import Middleware


class CollectorSeen(Middleware):
    """Notes, for each message about to be published, whether the collector was running."""

    def __init__(self) -> None:
        self.enabled: list[bool] = []
        self.bodies: list[bytes] = []

    def before_publish(self, message: Message) -> None:
        self.enabled.append(gc.isenabled())
        self.bodies.append(message.body)


@pytest.fixture
def seen() -> CollectorSeen:
    return CollectorSeen()


@pytest.fixture
def app(seen: CollectorSeen) -> Iterator[Celeriac]:
    app = Celeriac(
        "bulk", broker=MemoryBroker("bulk"), backend=MemoryBackend("bulk"), middleware=[seen]
    )

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.noop")
    def noop() -> None:
        return None

    yield app
    app.close()


def _uuid4(text: str) -> bool:
    value = uuid.UUID(text)
    return str(value) == text and value.version == 4 and value.variant == uuid.RFC_4122


@pytest.mark.parametrize("count", [1, 7, 8, 9, 1000])
def test_new_ids_are_distinct_version_4_uuids(count: int) -> None:
    ids = new_ids(count)
    assert len(ids) == count == len(set(ids))
    assert all(_uuid4(i) for i in ids)


def test_every_way_of_sending_names_calls_with_distinct_uuids(app: Celeriac) -> None:
    add = app.tasks["t.add"]
    one_by_one = [add.delay(i, i).id for i in range(300)]  # past the stock of ids made at once
    grouped = group(add.s(i, i) for i in range(300)).apply_async()
    ids = one_by_one + [grouped.id] + [r.id for r in grouped.results]
    assert len(set(ids)) == len(ids) == 601
    assert all(_uuid4(i) for i in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() only")
def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    new_ids(1)  # the parent now holds a stock of ids made at once: the child must not reuse it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out
        try:
            os.write(write, json.dumps(new_ids(5)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        childs = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert len(childs) == 5
    assert set(childs).isdisjoint(new_ids(5))


def test_a_big_group_pauses_the_collector_while_it_is_built_only(
    app: Celeriac, seen: CollectorSeen
) -> None:
    add = app.tasks["t.add"]
    assert gc.isenabled()
    group(add.s(i, i) for i in range(PAUSE_COLLECTOR - 1)).apply_async()
    assert set(seen.enabled) == {True}  # a small one never touches it
    seen.enabled.clear()
    result = group(add.s(i, i) for i in range(PAUSE_COLLECTOR)).apply_async()
    assert set(seen.enabled) == {False}
    assert gc.isenabled()
    assert len(result.results) == PAUSE_COLLECTOR


def test_the_collector_comes_back_when_a_big_group_fails(app: Celeriac) -> None:
    add = app.tasks["t.add"]
    sigs = group([*(add.s(i, i) for i in range(PAUSE_COLLECTOR)), add.s("x" * 4096, "y")])
    app.conf.message_max_bytes = 2048
    with pytest.raises(MessageTooLarge):
        sigs.apply_async()
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_program_stays_off(app: Celeriac) -> None:
    add = app.tasks["t.add"]
    gc.disable()
    try:
        group(add.s(i, i) for i in range(PAUSE_COLLECTOR)).apply_async()
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("settings", [{}, {"task_serializer": "pickle", "security_key": "k" * 32}])
def test_a_call_without_arguments_sends_what_serializing_them_gives(
    seen: CollectorSeen, settings: dict[str, Any]
) -> None:
    app = Celeriac("bulk-empty", broker=MemoryBroker("bulk-empty"), middleware=[seen], **settings)

    @app.task(name="t.noop")
    def noop() -> None:
        return None

    try:
        noop.delay()
        group(noop.s() for _ in range(10)).apply_async()
        app.send_task("t.noop", (), {})
        expected = app.serializer.dumps([[], {}])
        assert seen.bodies == [expected] * 12
    finally:
        app.close()
