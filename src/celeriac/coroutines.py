"""``async def`` tasks outside the asyncio pool, and the soft time limit inside a coroutine.

A task whose function is a coroutine function runs on any pool: the prefork, threads and solo
pools (and ``task.apply()``) run it to its end on an event loop kept per thread (``settle``), so
its asynchronous clients (redis-py's, httpx's) keep their connection pools from one call to the
next; the asyncio pool awaits it on the loop of its child process.

``interruptible`` is how a soft time limit reaches a coroutine: the pool cancels the coroutine's
asyncio task, and the ``CancelledError`` on its way in is replaced by ``SoftTimeLimitExceeded``,
raised inside the coroutine where it awaits, so ``except SoftTimeLimitExceeded`` in an ``async
def`` works as it does in a plain function.

``in_context`` is how the asyncio pool runs a job without an asyncio task of its own: the task
that awaits it drives each step of the job's coroutine inside the job's own ``Context`` (its
``self.request``, its context variables), and says when the job first waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import threading
from collections.abc import Callable, Coroutine, Generator
from typing import Any

_local = threading.local()  # .loop: this thread's event loop for ``async def`` tasks


class Interrupt:
    """What to raise in a coroutine instead of the next cancellation (set by the pool)."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: BaseException | None = None


class _Interruptible:
    """Drives ``coro`` for the task awaiting it; a cancellation arriving while ``interrupt``
    holds an exception is turned into that exception, thrown into ``coro``."""

    __slots__ = ("coro", "interrupt")

    def __init__(self, coro: Coroutine[Any, Any, Any], interrupt: Interrupt) -> None:
        self.coro = coro
        self.interrupt = interrupt

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, interrupt = self.coro, self.interrupt
        send: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = coro.send(send) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value
            try:
                send, error = (yield yielded), None
            except asyncio.CancelledError as cancelled:
                send, error = None, cancelled
                if interrupt.pending is not None:
                    error, interrupt.pending = interrupt.pending, None
                    task = asyncio.current_task()
                    if task is not None:  # this cancellation was ours, and is spent
                        task.uncancel()
            except BaseException as exc:  # passed on into the coroutine
                send, error = None, exc


def interruptible(coro: Coroutine[Any, Any, Any], interrupt: Interrupt) -> Any:
    """An awaitable of ``coro`` that a soft time limit can interrupt; see the module."""
    return _Interruptible(coro, interrupt)


class _InContext:
    """Drives ``coro`` for the task awaiting it, each step inside ``context``; calls
    ``on_suspend`` the first time ``coro`` waits (yields to the loop)."""

    __slots__ = ("context", "coro", "on_suspend")

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        context: contextvars.Context,
        on_suspend: Callable[[], object] | None,
    ) -> None:
        self.coro = coro
        self.context = context
        self.on_suspend = on_suspend

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, run = self.coro, self.context.run
        send: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = run(coro.send, send) if error is None else run(coro.throw, error)
            except StopIteration as stop:
                return stop.value
            if self.on_suspend is not None:
                self.on_suspend()
                self.on_suspend = None
            try:
                send, error = (yield yielded), None
            except BaseException as exc:  # a cancellation, passed on into the coroutine
                send, error = None, exc


def in_context(
    coro: Coroutine[Any, Any, Any],
    context: contextvars.Context,
    on_suspend: Callable[[], object] | None = None,
) -> Any:
    """An awaitable of ``coro`` whose every step runs in ``context`` (as if it were an asyncio
    task of its own); ``on_suspend`` is called when it first waits. See the module."""
    return _InContext(coro, context, on_suspend)


def is_coroutine_task(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` (a task's function) is an ``async def``."""
    return inspect.iscoroutinefunction(fn)


def settle(value: Any) -> Any:
    """``value``, or, when it is a coroutine (an ``async def`` task's call), what it returns
    once run to its end on this thread's event loop.

    Raises:
        Exception: whatever the coroutine raises.
    """
    if not inspect.iscoroutine(value):
        return value
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(value)
    # A loop runs in this thread already (task.apply() from a coroutine): another thread's.
    with concurrent.futures.ThreadPoolExecutor(1) as one:
        return one.submit(asyncio.run, value).result()


def _run_here(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on this thread's loop (made on first use, kept for the next calls).

    A soft time limit's signal (prefork) may land in the loop's own code rather than in the
    coroutine; it is then thrown into the coroutine where it waits, as the asyncio pool does.
    """
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    interrupt = Interrupt()
    task = loop.create_task(_awaited(coro, interrupt))
    try:
        return loop.run_until_complete(task)
    except BaseException as exc:
        if task.done():
            raise
        interrupt.pending = exc  # raised in the coroutine, which may handle it
        task.cancel()
        return loop.run_until_complete(task)


async def _awaited(coro: Coroutine[Any, Any, Any], interrupt: Interrupt) -> Any:
    return await interruptible(coro, interrupt)
