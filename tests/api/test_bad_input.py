"""Messages a worker must refuse: each is dead-lettered with its reason, its task id gets a
FAILURE (so nobody waits on it forever) unless the worker cannot trust that id (a signature
that does not verify), and the worker goes on with everything else.

Every bad message is sent between five good calls before and five after, and all ten must
succeed in the same ``drain()``.
"""

from __future__ import annotations

import fractions
import uuid
from collections.abc import Callable

import pytest

from celeriac import AsyncResult, Celeriac, states
from celeriac.exceptions import (
    ContentDisallowed,
    MalformedMessage,
    MessageTooLarge,
    NotRegistered,
)
from celeriac.message import Message
from celeriac.testing import in_process_worker

AppFactory = Callable[..., Celeriac]
Bad = Callable[[], str]


class Server:
    """A worker app with a task that should run and one that never should."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app
        self.never_ran: list[object] = []

        @app.task(name="api.double")
        def double(x: int) -> int:
            return 2 * x

        @app.task(name="api.never")
        def never(x: object) -> str:
            self.never_ran.append(x)
            return str(x)

    def run_around(
        self, good: Celeriac, bad: Bad, reason: str, *, recorded: bool = True
    ) -> AsyncResult[object]:
        """Send 5 good calls, the bad one, 5 good calls; drain; check all; return the bad one,
        whose FAILURE is ``recorded`` (or nothing is written under the id it claims)."""
        before = [good.send_task("api.double", (i,)) for i in range(5)]
        bad_id = bad()
        after = [good.send_task("api.double", (i,)) for i in range(5, 10)]
        worker = in_process_worker(self.app)
        assert worker.drain() == 11
        assert [r.get(timeout=1) for r in before + after] == [2 * i for i in range(10)]
        assert self.never_ran == []
        letters = self.app.broker.dead_letters()
        assert len(letters) == 1, [d.reason for d in letters]
        assert reason in letters[0].reason
        assert bad_id.encode() in letters[0].body
        assert self.app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
        bad_result = good.AsyncResult(bad_id)
        assert bad_result.state == (states.FAILURE if recorded else states.PENDING)
        return bad_result


def publish_raw(app: Celeriac, body: bytes, task: str = "api.never") -> str:
    message = Message(id=str(uuid.uuid4()), task=task, body=body)
    app.broker.publish(message)
    return message.id


@pytest.fixture
def server(make_app: AppFactory) -> Server:
    return Server(make_app())


def test_garbage_json_body(server: Server) -> None:
    app = server.app
    bad = server.run_around(
        app, lambda: publish_raw(app, b"{not json at all"), "does not decode as application/json"
    )
    with pytest.raises(MalformedMessage):
        bad.get(timeout=1)


@pytest.mark.parametrize(
    "body",
    [b'{"args": [1]}', b"[1, 2]", b"[[1]]", b'[{"x": 1}, [1]]', b"null", b'"text"'],
)
def test_json_body_that_is_not_args_and_kwargs(server: Server, body: bytes) -> None:
    app = server.app
    bad = server.run_around(
        app, lambda: publish_raw(app, body), "body must decode to [args, kwargs]"
    )
    with pytest.raises(MalformedMessage):
        bad.get(timeout=1)


def test_unknown_task_name(server: Server) -> None:
    app = server.app
    bad = server.run_around(app, lambda: app.send_task("nope", (1,)).id, "'nope'")
    with pytest.raises(NotRegistered, match="nope"):
        bad.get(timeout=1)
    assert "NotRegistered" in app.broker.dead_letters()[0].reason


def test_message_over_the_worker_limit(make_app: AppFactory) -> None:
    server = Server(make_app(message_max_bytes=2000))
    client = make_app(message_max_bytes=1_000_000)
    bad = server.run_around(
        client,
        lambda: client.send_task("api.never", ("x" * 5000,)).id,
        "over message_max_bytes (2000)",
    )
    with pytest.raises(MessageTooLarge):
        bad.get(timeout=1)


def test_client_refuses_a_message_over_its_own_limit(app: Celeriac) -> None:
    app.conf.message_max_bytes = 2000

    @app.task
    def take(text: str) -> int:
        return len(text)

    with pytest.raises(MessageTooLarge, match="message_max_bytes"):
        take.delay("x" * 5000)
    with pytest.raises(MessageTooLarge):
        app.send_task("anything", ("x" * 5000,))
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    take.delay("x" * 100)
    assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 1}


def pickle_client(make_app: AppFactory, key: str = "k") -> Celeriac:
    return make_app(task_serializer="pickle", accept_content=["pickle"], security_key=key)


def test_pickle_refused_by_a_json_only_worker(make_app: AppFactory) -> None:
    server = Server(make_app())
    sender = pickle_client(make_app)
    bad = server.run_around(
        make_app(),
        lambda: sender.send_task("api.never", (fractions.Fraction(1, 3),)).id,
        "not accepted",
    )
    with pytest.raises(ContentDisallowed):
        bad.get(timeout=1)


def test_worker_that_accepts_signed_pickle_runs_it(make_app: AppFactory) -> None:
    worker_app = make_app(accept_content=["json", "pickle"], security_key="k")
    ran: list[object] = []

    @worker_app.task(name="api.show")
    def show(x: object) -> str:
        ran.append(x)
        return repr(x)

    sender = pickle_client(make_app)
    result = sender.send_task("api.show", (fractions.Fraction(1, 3),))
    json_result = make_app(security_key="k").send_task("api.show", (3,))
    in_process_worker(worker_app).drain()
    assert ran == [fractions.Fraction(1, 3), 3]
    assert result.get(timeout=1) == "Fraction(1, 3)"
    assert json_result.get(timeout=1) == "3"
    assert worker_app.broker.dead_letters() == []


def test_message_signed_with_another_key(make_app: AppFactory) -> None:
    server = Server(make_app(accept_content=["json", "pickle"], security_key="k"))
    good = make_app(security_key="k")
    sender = pickle_client(make_app, key="not-k")
    bad = server.run_around(
        good,
        lambda: sender.send_task("api.never", (1,)).id,
        "signature does not match",
        recorded=False,
    )
    assert bad.state == states.PENDING


def test_unsigned_message_to_a_worker_with_a_key(make_app: AppFactory) -> None:
    server = Server(make_app(security_key="k"))
    good = make_app(security_key="k")
    unsigned = make_app()
    bad = server.run_around(
        good, lambda: unsigned.send_task("api.never", (1,)).id, "not signed", recorded=False
    )
    assert bad.state == states.PENDING


def test_tampered_signed_message(make_app: AppFactory) -> None:
    import dataclasses

    server = Server(make_app(security_key="k"))
    good = make_app(security_key="k")

    def tampered() -> str:
        honest = good.sender.message("api.never", (1,), {}, {}, task_defaults={})
        forged = dataclasses.replace(honest, body=b"[[2],{}]")
        good.broker.publish(forged)
        return forged.id

    bad = server.run_around(good, tampered, "signature does not match", recorded=False)
    assert bad.state == states.PENDING
