"""What runs inside an asyncio pool child: one event loop, many jobs at once.

The child reads its pipe from the main process without blocking the loop (``add_reader``):
frames (``frames.py``) holding ``(RUN, JobWire)``, ``(SOFT, key)``, ``(CANCEL, key)``,
``(TAKE_BACK, keys)`` (hand back these jobs if they still wait for a slot) or ``None`` (stop
once the running jobs end). An ``async def`` task becomes an asyncio task of this loop
(``arunner.aexecute``); a plain function runs in one of ``threads`` threads of this child.

At most ``slots`` (``-c``) jobs run at once. While tasks are short, the main process sends a
child more (``AsyncioPool``): those wait here, in order, and the next starts the moment a
running one ends, without a round trip through the main process. Frames go back as
``(key, next_key, outcome_wire)``: the outcome of ``key`` and the job started in its place
(None: none), ``(None, QUEUED, keys)``: the jobs just received that wait for a slot, or
``(None, TAKEN_BACK, keys)``: the waiting jobs handed back, unstarted.

A soft time limit (``SOFT``) is a cancellation turned into ``SoftTimeLimitExceeded`` inside the
coroutine (``coroutines.interruptible``); a hard one or ``terminate`` (``CANCEL``) cancels its
asyncio task; if the task does not end within the pool's grace period, the main process kills
this child and starts another. A plain function in a thread cannot be cancelled: it gets no soft
limit, and its hard limit is the child's replacement.

A watchdog thread sees when the loop stops turning (a coroutine calling ``time.sleep``, CPU
work in an ``async def``) and logs which task blocks it, and for how long.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import pickle
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from celeriac import signals
from celeriac.coroutines import Interrupt
from celeriac.exceptions import SoftTimeLimitExceeded, TaskRevokedError
from celeriac.execution import Outcome, execute, failure
from celeriac.worker.arunner import Prepared, aexecute, prepare
from celeriac.worker.child import PICKLE, _become_child
from celeriac.worker.frames import CHUNK, HEADER
from celeriac.worker.pool import outcome_wire
from celeriac.worker.runner import TaskRunner

log = logging.getLogger("celeriac.worker")
RUN, SOFT, CANCEL, TAKE_BACK = "run", "soft", "cancel", "take_back"
QUEUED = -2  # next_key of a frame listing jobs that wait for a slot
TAKEN_BACK = -3  # next_key of a frame listing waiting jobs handed back unstarted
BLOCKING_WARNING = 0.5  # seconds the loop may be stuck in one task before it is logged
BEAT = 0.05  # seconds between the loop's heartbeats that the watchdog checks


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (the ``asyncio`` extra), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@dataclass
class _Job:
    label: str  # name[id], for logs
    future: asyncio.Future[Outcome]
    interrupt: Interrupt | None  # None: a plain function, in a thread


@dataclass
class _Server:
    loop: asyncio.AbstractEventLoop
    jobs_fd: int
    outcomes_fd: int
    runner: TaskRunner
    executor: concurrent.futures.ThreadPoolExecutor
    slots: int
    running: dict[int, _Job] = field(default_factory=dict)
    # for a slot, oldest first: each decoded as it came, so a slot that frees starts it at once
    waiting: deque[tuple[int, Prepared | Outcome]] = field(default_factory=deque)
    unsent: list[bytes] = field(default_factory=list)  # frames written once this loop turn ends
    queued: list[int] = field(default_factory=list)  # keys queued since the last report
    labels: dict[asyncio.Future[Any], str] = field(default_factory=dict)  # for the watchdog
    buffer: bytearray = field(default_factory=bytearray)
    stopping: bool = False
    done: asyncio.Future[None] | None = None

    async def serve(self) -> None:
        """Serve until told to stop (or the main process is gone) and every job ended."""
        self.done = self.loop.create_future()
        os.set_blocking(self.jobs_fd, False)
        self.loop.add_reader(self.jobs_fd, self._readable)
        try:
            await self.done
        finally:
            self.loop.remove_reader(self.jobs_fd)
            if self.unsent:
                self._flush()

    def _readable(self) -> None:
        try:
            chunk = os.read(self.jobs_fd, CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # the main process closed the pipe: stop
            self.loop.remove_reader(self.jobs_fd)
            self._stop()
            return
        self.buffer += chunk
        for frame in self._frames():
            self._handle(pickle.loads(frame))
        if self.queued:  # one frame for every job of this read that waits
            self._write((None, QUEUED, self.queued))
            self.queued = []

    def _frames(self) -> list[bytes]:
        frames, buffer, start = [], self.buffer, 0
        while len(buffer) - start >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer, start)
            end = start + HEADER.size + size
            if end > len(buffer):
                break
            frames.append(bytes(buffer[start + HEADER.size : end]))
            start = end
        del buffer[:start]
        return frames

    def _handle(self, message: tuple[str, Any] | None) -> None:
        if message is None:
            self._stop()
            return
        kind, value = message
        if kind == RUN:
            if len(self.running) < self.slots and not self.waiting:
                self._start(value[0], prepare(self.runner, value))
            else:
                self.waiting.append((value[0], prepare(self.runner, value)))
                self.queued.append(value[0])
            return
        if kind == TAKE_BACK:
            wanted = set(value)
            keys = [key for key, _ in self.waiting if key in wanted]
            self.waiting = deque(item for item in self.waiting if item[0] not in wanted)
            self._write((None, TAKEN_BACK, keys))
            return
        if kind == CANCEL and self._drop(value):
            return
        job = self.running.get(value)
        if job is None or job.interrupt is None or job.future.done():
            return  # ended meanwhile, or a thread: the main process's grace period decides
        if kind == SOFT:
            job.interrupt.pending = SoftTimeLimitExceeded(f"{job.label} reached its soft limit")
        job.future.cancel()

    def _drop(self, key: int) -> bool:
        """Take ``key`` out of the waiting jobs (cancelled before it started); False if it
        does not wait here."""
        for waiting in self.waiting:
            if waiting[0] == key:
                self.waiting.remove(waiting)
                self._report(key, failure(TaskRevokedError("cancelled before it started")))
                return True
        return False

    def _start(self, key: int, prepared: Prepared | Outcome) -> None:
        if isinstance(prepared, Outcome):  # it did not decode
            self._ended_with(key, prepared)
            return
        interrupt: Interrupt | None = None
        future: asyncio.Future[Outcome]
        if prepared.is_async:
            interrupt = Interrupt()
            coro = aexecute(self.runner, prepared, interrupt)
            future = self.loop.create_task(coro, name=prepared.label)
        else:
            future = self.loop.run_in_executor(self.executor, _run_plain, self.runner, prepared)
        self.running[key] = _Job(prepared.label, future, interrupt)
        self.labels[future] = prepared.label
        future.add_done_callback(lambda f: self._ended(key, f))

    def _ended(self, key: int, future: asyncio.Future[Outcome]) -> None:
        self.running.pop(key, None)
        self.labels.pop(future, None)
        if future.cancelled():
            outcome = failure(TaskRevokedError("cancelled (time limit or terminate)"))
        elif future.exception() is not None:
            outcome = failure(future.exception() or RuntimeError("no outcome"))
        else:
            outcome = future.result()
        self._ended_with(key, outcome)

    def _ended_with(self, key: int, outcome: Outcome) -> None:
        """Report ``key``'s outcome, with the waiting job that starts in its place."""
        following = self.waiting.popleft() if self.waiting and not self.stopping else None
        self._report(key, outcome, None if following is None else following[0])
        if following is not None:
            self._start(*following)
        elif self.stopping and not self.running:
            self._finish()

    def _report(self, key: int, outcome: Outcome, next_key: int | None = None) -> None:
        self._write((key, next_key, outcome_wire(outcome)))

    def _write(self, frame: tuple[Any, ...]) -> None:
        """Send ``frame`` with the others of this loop turn: one write, one wake-up of the main
        process, for the many jobs that end at once."""
        if not self.unsent:
            self.loop.call_soon(self._flush)
        self.unsent.append(pickle.dumps(frame, PICKLE))

    def _flush(self) -> None:
        frames, self.unsent = self.unsent, []
        try:
            write_frames(self.outcomes_fd, frames)
        except OSError:  # the main process is gone: nobody to report to
            self._finish()

    def _stop(self) -> None:
        self.stopping = True
        self.waiting.clear()  # never started: the main process hands them back
        if not self.running:
            self._finish()

    def _finish(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


def write_frames(fd: int, frames: list[bytes]) -> None:
    """Write ``frames`` (``frames.py``'s format) to ``fd`` in one go, blocking until done.

    Raises:
        OSError: the pipe is broken.
    """
    view = memoryview(b"".join(HEADER.pack(len(frame)) + frame for frame in frames))
    while view:
        view = view[os.write(fd, view) :]


def _run_plain(runner: TaskRunner, job: Prepared) -> Outcome:
    """A plain function's run, in a thread of the child."""
    return execute(
        job.task, job.request, job.args, job.kwargs, runner.serializer, runner.middleware
    )


class _Watchdog:
    """Logs a task that keeps the loop from turning for ``BLOCKING_WARNING`` seconds or more:
    the loop beats every ``BEAT`` seconds; a thread checks the beats, and names the asyncio
    task running on the loop when they stop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, labels: dict[Any, str]) -> None:
        self.loop = loop
        self.labels = labels
        self.last_beat = time.monotonic()
        self.blocked: str | None = None  # the task seen blocking, logged again when it ends
        self.stopped = threading.Event()

    def start(self) -> None:
        """Start the beats and the watching thread."""
        self.loop.call_soon(self._beat)
        threading.Thread(target=self._watch, name="celeriac-watchdog", daemon=True).start()

    def _beat(self) -> None:
        now = time.monotonic()
        if self.blocked is not None:
            log.warning(
                "%s blocked the event loop for %.2fs: use await (asyncio.sleep, an async "
                "client) or asyncio.to_thread for blocking calls in an async def task",
                self.blocked,
                now - self.last_beat,
            )
            self.blocked = None
        self.last_beat = now
        if not self.stopped.is_set():
            self.loop.call_later(BEAT, self._beat)

    def _watch(self) -> None:
        while not self.stopped.wait(BEAT):
            stuck = time.monotonic() - self.last_beat - BEAT
            if stuck < BLOCKING_WARNING or self.blocked is not None:
                continue
            task = asyncio.current_task(self.loop)  # the task whose step runs now
            label = self.labels.get(task) if task is not None else None
            if label is not None:
                self.blocked = label
                log.warning("%s is blocking the event loop (%.1fs so far)", label, stuck)


def asyncio_child_main(
    jobs_fd: int,
    outcomes_fd: int,
    runner: TaskRunner,
    slots: int,
    threads: int,
    parent_pid: int,
) -> None:
    """Serve jobs on one event loop until told to stop; see the module docstring. As it
    exits it sends Celery's ``worker_process_shutdown`` (``pid``, ``exitcode``)."""
    if not _become_child(parent_pid):
        return
    runner.middleware.child_start()
    exitcode = 1
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="celeriac-sync")
    server = _Server(loop, jobs_fd, outcomes_fd, runner, executor, slots)
    watchdog = _Watchdog(loop, server.labels)
    try:
        watchdog.start()
        loop.run_until_complete(server.serve())
        exitcode = 0
    finally:
        watchdog.stopped.set()
        executor.shutdown(wait=False)
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        if signals.worker_process_shutdown.has_receivers():
            signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=exitcode)
