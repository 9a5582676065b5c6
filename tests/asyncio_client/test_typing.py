"""What the type checker sees of an ``async def`` task: ``mypy --strict`` runs over this file
with the rest of the project (``make lint``), so each ``assert_type`` below is checked there,
and the calls run here on the memory broker in eager mode."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, assert_type

from celeriac import AsyncResult, Celeriac, Task, shared_task
from celeriac.result import EagerResult


def _app() -> Celeriac:
    return Celeriac("typing", broker="memory://typing", task_always_eager=True)


def test_an_async_task_is_typed_by_what_its_coroutine_returns() -> None:
    app = _app()

    @app.task
    async def fetch(url: str) -> int:
        await asyncio.sleep(0)
        return len(url)

    @app.task(bind=True, max_retries=3)
    async def charge(self: Task[..., Any], order_id: int) -> str:
        return f"{self.name}:{order_id}"

    @app.task(name="typing.plain")
    def plain(x: int) -> int:
        return x + 1

    async def main() -> tuple[int, str, int]:
        sent = await fetch.adelay("https://example.org")
        assert_type(sent, AsyncResult[int])
        assert_type(fetch.delay("x"), AsyncResult[int])
        assert_type(charge.delay(7), AsyncResult[str])
        assert_type(plain.delay(1), AsyncResult[int])
        assert_type(fetch.apply(("abc",)), EagerResult[int])
        called = fetch("here")  # calling the task here gives its coroutine
        _ = assert_type(called, Coroutine[Any, Any, int])
        got = await sent
        assert_type(got, int)
        return got, await charge.delay(7), await called

    assert asyncio.run(main()) == (19, f"{charge.name}:7", 4)


def _a_shared_async_task_is_typed_the_same_way() -> None:
    """Checked by mypy only, never called: ``@shared_task`` registers with every app, and
    would leak into the other tests' apps."""

    @shared_task(name="typing.shared_fetch")
    async def shared_fetch(url: str) -> int:
        return len(url)

    assert_type(shared_fetch.delay("abc"), AsyncResult[int])
