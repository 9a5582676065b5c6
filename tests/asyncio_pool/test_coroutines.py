"""``coroutines.py`` in this process: an ``async def`` task run to its end on a loop kept per
thread (``settle``, as the prefork, threads and solo pools and ``apply()`` run one), and the soft
time limit thrown into a coroutine (``interruptible``, as the asyncio pool raises it)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from celeriac import Celeriac, SoftTimeLimitExceeded
from celeriac.coroutines import Interrupt, interruptible, is_coroutine_task, settle


async def _loop_id() -> int:
    await asyncio.sleep(0)
    return id(asyncio.get_running_loop())


def test_settle_leaves_a_plain_value_and_runs_a_coroutine_on_this_threads_loop() -> None:
    assert settle(42) == 42
    first, second = settle(_loop_id()), settle(_loop_id())
    assert first == second  # one loop a thread, kept between calls

    other: list[int] = []
    thread = threading.Thread(target=lambda: other.append(settle(_loop_id())))
    thread.start()
    thread.join()
    assert other and other[0] != first  # another thread, another loop


def test_settle_inside_a_running_loop_runs_the_coroutine_in_a_thread_of_its_own() -> None:
    async def caller() -> int:
        return int(settle(_loop_id()))

    outer = asyncio.run(caller())
    assert isinstance(outer, int)


def test_settle_raises_what_the_coroutine_raises() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("gone")

    with pytest.raises(KeyError):
        settle(fails())


def test_a_soft_limit_is_raised_inside_the_coroutine_where_it_awaits() -> None:
    async def caught() -> str:
        try:
            await asyncio.sleep(10)
        except SoftTimeLimitExceeded:
            await asyncio.sleep(0)  # it may go on awaiting: the cancellation was spent
            return "caught"
        return "not interrupted"

    async def main() -> tuple[Any, int]:
        interrupt = Interrupt()
        task = asyncio.ensure_future(_drive(caught(), interrupt))
        await asyncio.sleep(0.01)
        interrupt.pending = SoftTimeLimitExceeded("soft")
        task.cancel()
        value = await task
        return value, task.cancelling()

    assert asyncio.run(main()) == ("caught", 0)


def test_a_plain_cancellation_still_cancels() -> None:
    async def main() -> bool:
        task = asyncio.ensure_future(_drive(asyncio.sleep(10), Interrupt()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert asyncio.run(main())


async def _drive(coro: Any, interrupt: Interrupt) -> Any:
    return await interruptible(coro, interrupt)


def test_apply_runs_an_async_task_and_its_retries_in_this_process() -> None:
    app = Celeriac("eager", broker="memory://")

    @app.task(bind=True, max_retries=3, default_retry_delay=0)
    async def flaky(self: Any, n: int) -> int:
        await asyncio.sleep(0)
        if self.request.retries < n:
            raise self.retry(exc=ConnectionError("down"))
        return int(self.request.retries)

    assert is_coroutine_task(flaky.fn)
    # Task's type parameters see a coroutine function's return type, a coroutine; the value is
    # what it awaits to.
    value: Any = flaky.apply((2,)).get()
    assert value == 2
