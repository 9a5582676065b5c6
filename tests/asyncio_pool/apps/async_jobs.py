"""Tasks that tests/asyncio_pool runs in real ``-P asyncio`` (and prefork) worker subprocesses.

The broker comes from $CELERIAC_BROKER_URL and the lease from $CELERIAC_TEST_LEASE. Tasks that
log append one line to a file: O_APPEND writes this small are atomic across processes.
"""

import asyncio
import contextlib
import contextvars
import os
import threading
import time
from typing import Any

from celeriac import Celery, SoftTimeLimitExceeded, Task

app = Celery("async_jobs")
app.conf.broker_transport_options = {
    "lease_seconds": float(os.environ.get("CELERIAC_TEST_LEASE", "30"))
}
if os.environ.get("CELERIAC_TEST_SHUTDOWN_TIMEOUT"):
    app.conf.worker_shutdown_timeout = float(os.environ["CELERIAC_TEST_SHUTDOWN_TIMEOUT"])
if os.environ.get("CELERIAC_TEST_KEYPREFIX"):
    app.conf.broker_transport_options["global_keyprefix"] = os.environ["CELERIAC_TEST_KEYPREFIX"]


def _log(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{text}\n".encode())
    finally:
        os.close(fd)


@app.task(bind=True)
async def snooze(self: Task[..., Any], path: str, seconds: float) -> str | None:
    """Log its start, await, log its end: "start|end <task id> <wall clock> <pid>"."""
    _log(path, f"start {self.request.id} {time.time():.6f} {os.getpid()}")
    await asyncio.sleep(seconds)
    _log(path, f"end {self.request.id} {time.time():.6f} {os.getpid()}")
    return self.request.id


@app.task(bind=True)
async def counted(self: Task[..., Any], path: str, seconds: float = 0.0) -> int:
    """Log this run ("<task id> <pid>"), then await."""
    _log(path, f"{self.request.id} {os.getpid()}")
    await asyncio.sleep(seconds)
    return os.getpid()


@app.task(bind=True, acks_late=False)
async def counted_early(self: Task[..., Any], path: str, seconds: float = 0.0) -> int:
    """``counted``, acknowledged before it runs (Celery's default)."""
    _log(path, f"{self.request.id} {os.getpid()}")
    await asyncio.sleep(seconds)
    return os.getpid()


@app.task(bind=True, default_retry_delay=0.2, max_retries=5)
async def flaky(self: Task[..., Any], n: int) -> int:
    await asyncio.sleep(0)
    if self.request.retries < n:
        raise self.retry(exc=ConnectionError("network down"))
    return self.request.retries


@app.task(soft_time_limit=1)
async def soft_limited() -> str:
    try:
        await asyncio.sleep(10)
    except SoftTimeLimitExceeded:
        return "caught soft limit"
    return "not interrupted"


@app.task(time_limit=1)
async def hard_limited() -> None:
    await asyncio.sleep(30)


@app.task(time_limit=1)
async def stubborn() -> None:
    """Swallows its cancellation: only replacing its process ends it."""
    while True:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)


@app.task
async def sleeper(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@app.task
async def blocker(seconds: float) -> float:
    time.sleep(seconds)  # the mistake the watchdog reports
    return seconds


@app.task
async def where() -> dict[str, Any]:
    """Where an async task runs: the process, and whether an event loop runs it."""
    asyncio.get_running_loop()
    return {"pid": os.getpid(), "thread": threading.current_thread().name}


@app.task(time_limit=1)
def plain_hard_limited() -> None:
    """A plain function in a thread cannot be cancelled: its process is replaced."""
    time.sleep(30)


@app.task
def plain_where() -> dict[str, Any]:
    """Where a plain function runs: the process and the thread."""
    return {"pid": os.getpid(), "thread": threading.current_thread().name}


@app.task(bind=True)
async def progress(self: Task[..., Any]) -> str:
    self.update_state(state="PROGRESS", meta={"done": 1})
    await asyncio.sleep(0.01)
    return "ok"


# -- each job its own task identity once it waits, and its own context ------------------------
_tag: contextvars.ContextVar[str | None] = contextvars.ContextVar("tag", default=None)
_tasks_seen: dict[int, list[str]] = {}  # id of the asyncio task that ran them -> tags, in order
_tasks_kept: list[asyncio.Task[Any]] = []  # kept alive: an id is never reused meanwhile


def _on_current_task(tag: str) -> None:
    task = asyncio.current_task()
    assert task is not None, "no current task: asyncio.timeout and TaskGroup would fail"
    if id(task) not in _tasks_seen:
        _tasks_kept.append(task)
    _tasks_seen.setdefault(id(task), []).append(tag)


@app.task
async def isolated(tag: str, seconds: float) -> dict[str, Any]:
    """Set a context variable, maybe wait, and report what it saw: the variable as it found
    it (None: no job before leaked its own), and under ``asyncio.timeout`` (which needs a
    current task, from the first step on)."""
    found = _tag.get()
    _tag.set(tag)
    async with asyncio.timeout(30):
        _on_current_task(f"{'wait' if seconds else 'sync'}:{tag}")
        if seconds:
            await asyncio.sleep(seconds)
    return {"found": found, "after": _tag.get()}


@app.task
async def tasks_seen() -> list[list[str]]:
    """The tags of ``isolated`` runs, grouped by the asyncio task that ran them."""
    return list(_tasks_seen.values())
