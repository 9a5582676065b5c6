"""A call without options (``delay()``) is stamped from its task's message template
(``Sender.message``): the message is the one a call with options builds, and the template
follows what it is built from (the task's defaults, the sending task's lineage)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celeriac
from celeriac.backends.memory import MemoryBackend
from celeriac.brokers.memory import MemoryBroker
from celeriac.message import Message
from celeriac.middleware import Middleware
from celeriac.request import Request, pop_request, push_request

NOW = 1_700_000_000.5


class Published(Middleware):
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def after_publish(self, message: Message) -> None:
        self.messages.append(message)


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture(
    params=[{}, {"task_compression": "gzip"}, {"security_key": "s" * 32}],
    ids=["defaults", "compressed", "signed"],
)
def app(request: pytest.FixtureRequest, published: Published) -> Iterator[Celeriac]:
    app = Celeriac(
        "template",
        broker=MemoryBroker("template", clock=lambda: NOW),
        backend=MemoryBackend("template"),
        middleware=[published],
        **request.param,
    )
    yield app
    app.close()


def _without_id(message: Message) -> tuple[dict[str, Any], bytes]:
    header = message.header()
    header.pop("id")
    return header, message.encode().split(b"\n")[-1]


def _pair(app: Celeriac, published: Published, name: str, *args: Any) -> None:
    """A plain delay() and the same call with an option that changes nothing: one message."""
    task = app.tasks[name]
    published.messages.clear()
    task.delay(*args)
    task.apply_async(args, retry=True)  # options: the general path
    plain, general = published.messages
    assert _without_id(plain) == _without_id(general)
    assert Message.decode(plain.encode()) == plain
    raw = plain.encode().replace(plain.id.encode(), general.id.encode())
    if plain.signature is None:
        assert raw == general.encode()


@pytest.mark.parametrize(
    "defaults",
    [
        {},
        {"queue": "q", "priority": 4, "time_limit": 3, "soft_time_limit": 2, "ignore_result": True},
        {"expires": 30},
        {"expires": datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)},
    ],
    ids=["none", "options", "relative expiry", "absolute expiry"],
)
def test_delay_sends_the_message_apply_async_with_options_sends(
    app: Celeriac, published: Published, defaults: dict[str, Any]
) -> None:
    @app.task(name="t.echo", **defaults)
    def echo(*args: Any) -> Any:
        return args

    for args in [(), (1, "é", [2.5]), ({"k": None},)]:
        _pair(app, published, "t.echo", *args)


def test_the_template_follows_the_task_and_the_lineage(app: Celeriac, published: Published) -> None:
    @app.task(name="t.noop")
    def noop() -> None:
        return None

    noop.delay()
    noop.queue = "moved"  # a task attribute changed at run time
    noop.delay()
    token = push_request(
        Request(id="parent", task="t.outer", root_id="root", called_directly=False)
    )
    try:
        noop.delay()
    finally:
        pop_request(token)
    noop.delay()
    first, moved, child, after = published.messages
    assert (first.queue, moved.queue, child.queue) == ("celeriac", "moved", "moved")
    assert (child.parent_id, child.root_id) == ("parent", "root")
    assert (after.parent_id, after.root_id) == (None, None)
    assert len({m.id for m in published.messages}) == 4


def test_a_changed_setting_takes_effect(app: Celeriac, published: Published) -> None:
    @app.task(name="t.noop")
    def noop() -> None:
        return None

    noop.delay()
    app.conf.task_default_queue = "elsewhere"
    noop.delay()
    assert [m.queue for m in published.messages] == ["celeriac", "elsewhere"]
