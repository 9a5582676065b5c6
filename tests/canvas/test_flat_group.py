"""A flat group's fast path (``canvas.flat``) sends the messages the general path sends.

Each case applies the same group twice, once as ``group.apply_async`` does (the fast path) and
once through ``Container.apply_async`` (the general path: clone, freeze, plan), on an app whose
broker reads a fixed clock, and compares what was published: every header field but the ids,
the body, and the bytes on the wire once the ids are blanked.
"""

from __future__ import annotations

import datetime
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac import Celeriac, group
from celeriac.backends.memory import MemoryBackend
from celeriac.brokers.memory import MemoryBroker
from celeriac.canvas import flat
from celeriac.canvas.container import Container
from celeriac.message import Message
from celeriac.middleware import Middleware
from celeriac.result import GroupResult, group_key

NOW = 1_700_000_000.25


class Published(Middleware):
    """Keeps what ``after_publish`` saw, in order."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def before_publish(self, message: Message) -> None:
        if message.task.endswith("tagged"):
            message.headers["tag"] = "seen"  # a middleware changing the message

    def after_publish(self, message: Message) -> None:
        self.messages.append(message)


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def make_app(published: Published) -> Iterator[Callable[..., Celeriac]]:
    apps: list[Celeriac] = []

    def make(**settings: Any) -> Celeriac:
        app = Celeriac(
            "flat",
            broker=MemoryBroker("flat", clock=lambda: NOW),
            backend=MemoryBackend("flat"),
            middleware=[published],
            **settings,
        )

        @app.task(name="t.add")
        def add(x: int, y: int) -> int:
            return x + y

        @app.task(name="t.mul", queue="slow", priority=3, time_limit=30, expires=60)
        def mul(x: int, y: int) -> int:
            return x * y

        @app.task(name="t.tagged")
        def tagged(*args: Any) -> None:
            return None

        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def _blank(message: Message, ids: dict[str, str]) -> tuple[dict[str, Any], bytes]:
    """The fields and the wire bytes of a message with its ids named by position."""
    raw = message.encode()
    for real, name in ids.items():
        raw = raw.replace(real.encode(), name.encode())
    fields = {**message.header(), "body": message.body, "signature": None}
    fields["id"] = ids[message.id]
    fields["group_id"] = ids.get(message.group_id or "", message.group_id)
    if message.signature is not None:
        raw = raw.split(b"\n", 1)[1]  # the signature covers the ids: compared decoded instead
    return fields, raw


def _both(
    app: Celeriac, published: Published, build: Callable[[], group], **options: Any
) -> tuple[list[tuple[dict[str, Any], bytes]], ...]:
    sent = []
    for send in (group.apply_async, Container.apply_async):
        published.messages.clear()
        result = send(build(), **options)
        assert isinstance(result, GroupResult)
        messages = list(published.messages)
        assert [m.id for m in messages] == [r.id for r in result.results]
        stored = app.backend.get_document(group_key(result.id))
        assert stored == {"result": {"id": result.id, "results": [{"id": m.id} for m in messages]}}
        ids = {result.id: "group", **{m.id: f"m{i}" for i, m in enumerate(messages)}}
        for message in messages:
            assert Message.decode(message.encode()) == message  # the bytes say what it holds
        sent.append([_blank(m, ids) for m in messages])
    return tuple(sent)


CASES: dict[str, tuple[Callable[[Celeriac], group], dict[str, Any]]] = {
    "plain": (lambda app: group(app.tasks["t.add"].s(i, i) for i in range(5)), {}),
    "task defaults, two tasks": (
        lambda app: group(
            [app.tasks["t.mul"].s(1, 2), app.tasks["t.mul"].s(3, 4), app.tasks["t.add"].s(5, 6)]
        ),
        {},
    ),
    "call options": (
        lambda app: group(app.tasks["t.add"].s(i, i) for i in range(3)),
        {
            "countdown": 5,
            "expires": 120,
            "priority": 7,
            "queue": "q2",
            "time_limit": 9,
            "soft_time_limit": 4,
            "headers": {"h": [1, 2]},
            "ignore_result": True,
            "parent_id": "p",
            "root_id": "r",
            "task_id": "given-group-id",
        },
    ),
    "absolute times": (
        lambda app: group(app.tasks["t.add"].s(i, i) for i in range(3)),
        {
            "eta": datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC),
            "expires": datetime.datetime(2031, 1, 1, tzinfo=datetime.UTC),
        },
    ),
    "members' own options and ids": (
        lambda app: group(
            [
                app.tasks["t.add"].s(1, 1).set(countdown=3, queue="a"),
                app.tasks["t.add"].s(2, 2).set(task_id="own-id"),
                app.tasks["t.add"].si(3, 3),
                app.tasks["t.add"].s(4).set(priority=1),
            ],
            queue="from-group",
        ),
        {},
    ),
    "partial arguments": (
        lambda app: group([app.tasks["t.add"].s(1), app.tasks["t.add"].si(2, 2)]),
        {"args": (10,)},
    ),
    "a middleware changes the headers": (
        lambda app: group(app.tasks["t.tagged"].s(i) for i in range(3)),
        {},
    ),
    "unregistered task": (
        lambda app: group(app.signature("elsewhere", (i,)) for i in range(3)),
        {},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"task_compression": "zlib"},
        {"security_key": "k" * 32},
        {"task_routes": {"t.*": {"queue": "routed", "priority": 2}}},
    ],
    ids=["defaults", "compressed", "signed", "routed"],
)
def test_fast_path_sends_what_the_general_path_sends(
    case: str, settings: dict[str, Any], make_app: Callable[..., Celeriac], published: Published
) -> None:
    app = make_app(**settings)
    build, options = CASES[case]
    options = dict(options)
    args = options.pop("args", None)
    fast, general = _both(app, published, lambda: build(app), args=args, **options)
    assert fast == general


def test_a_router_function_sees_each_member(
    make_app: Callable[..., Celeriac], published: Published
) -> None:
    def route(name: str, args: Any, kwargs: Any, options: Any, **kw: Any) -> dict[str, Any]:
        return {"queue": f"q{args[0]}"}

    app = make_app(task_routes=[route])
    fast, general = _both(
        app, published, lambda: group(app.tasks["t.add"].s(i, i) for i in range(3))
    )
    assert fast == general
    assert [m.queue for m in published.messages] == ["q0", "q1", "q2"]


def test_the_fast_path_is_taken_and_leaves_the_group_as_it_was(
    make_app: Callable[..., Celeriac], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    taken: list[int] = []
    send = flat.send_flat

    def counted(*args: Any) -> GroupResult:
        taken.append(1)
        return send(*args)

    module = importlib.import_module("celeriac.canvas.group")  # the package names the class
    monkeypatch.setattr(module, "send_flat", counted)
    sigs = group(app.tasks["t.add"].s(i, i) for i in range(3))
    before = sigs.to_dict()
    first, second = sigs.apply_async(), sigs.apply_async()
    assert taken == [1, 1]
    assert sigs.to_dict() == before
    assert first.id != second.id and {r.id for r in first.results}.isdisjoint(
        r.id for r in second.results
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda app: group([app.tasks["t.add"].s(1, 1), group([app.tasks["t.add"].s(2, 2)])]),
        lambda app: group([app.tasks["t.add"].s(1, 1) | app.tasks["t.add"].s(2)]),
        lambda app: group([app.tasks["t.add"].s(1, 1).on_error(app.tasks["t.add"].s(0, 0))]),
        lambda app: group([]),
    ],
    ids=["nested group", "chain", "link_error", "empty"],
)
def test_other_groups_take_the_general_path(
    build: Callable[[Celeriac], group], make_app: Callable[..., Celeriac]
) -> None:
    app = make_app()
    assert not flat.is_flat(build(app), {})
    assert not flat.is_flat(group([app.tasks["t.add"].s(1, 1)]), {"link": app.tasks["t.add"].s()})
