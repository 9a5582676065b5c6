"""A big flat group (ids laid out in bulk, the header spliced once for all members) sends the
messages the general path sends, whatever varies between the members or the times they carry.
See ``test_flat_group.py`` for the smaller cases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac import Celeriac, group
from celeriac.backends.memory import MemoryBackend
from celeriac.brokers.memory import MemoryBroker
from celeriac.canvas.container import Container
from celeriac.message import Message
from celeriac.middleware import Middleware
from celeriac.result import GroupResult

NOW = 1_700_000_000.125


class Published(Middleware):
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def after_publish(self, message: Message) -> None:
        self.messages.append(message)


@pytest.fixture(
    params=[{}, {"task_compression": "gzip"}, {"security_key": "b" * 32}],
    ids=["defaults", "compressed", "signed"],
)
def app(request: pytest.FixtureRequest) -> Iterator[Celeriac]:
    app = Celeriac(
        "bulk",
        broker=MemoryBroker("bulk", clock=lambda: NOW),
        backend=MemoryBackend("bulk"),
        middleware=[Published()],
        **request.param,
    )

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.noop")
    def noop() -> None:
        return None

    yield app
    app.close()


def _sent(app: Celeriac, send: Callable[..., Any], sig: group, **options: Any) -> list[Any]:
    published = next(m for m in app.middleware.middleware if isinstance(m, Published))
    published.messages.clear()
    result = send(sig, **options)
    assert isinstance(result, GroupResult)
    messages = list(published.messages)
    assert [m.id for m in messages] == [r.id for r in result.results]
    seen = []
    for n, message in enumerate(messages):
        assert Message.decode(message.encode()) == message
        raw = message.encode().replace(message.id.encode(), f"member-{n}".encode())
        raw = raw.replace(result.id.encode(), b"the-group")
        if message.signature is not None:
            raw = raw.split(b"\n", 1)[1]  # the signature covers the ids
        header = {**message.header(), "id": n, "group_id": None}
        seen.append((header, message.body, raw))
    return seen


MEMBERS: dict[str, Callable[[Celeriac], list[Any]]] = {
    "no arguments": lambda app: [app.tasks["t.noop"].s() for _ in range(40)],
    "arguments, own ids, two tasks": lambda app: [
        *(app.tasks["t.add"].s(i, i) for i in range(30)),
        app.tasks["t.add"].s(1, 2).set(task_id="own-id"),
        *(app.tasks["t.noop"].si() for _ in range(10)),
    ],
}
TIMES: dict[str, dict[str, Any]] = {
    "now": {},
    "countdown and expiry": {"countdown": 30, "expires": 600, "priority": 4},
}


@pytest.mark.parametrize("times", list(TIMES))
@pytest.mark.parametrize("members", list(MEMBERS))
def test_a_big_group_sends_what_the_general_path_sends(
    app: Celeriac, members: str, times: str
) -> None:
    fast = _sent(app, group.apply_async, group(MEMBERS[members](app)), **TIMES[times])
    general = _sent(app, Container.apply_async, group(MEMBERS[members](app)), **TIMES[times])
    assert len(fast) >= 40
    assert fast == general
