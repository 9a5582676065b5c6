"""What runs inside an asyncio pool child: one event loop, many jobs at once.

The child reads its pipe from the main process without blocking the loop (``add_reader``):
frames (``frames.py``), each a pickled list of messages: ``(RUN, JobWire)``, ``(SOFT, key)``,
``(CANCEL, key)``, ``(TAKE_BACK, keys)`` (hand back these jobs if they still wait for a slot)
or ``None`` (stop once the running jobs end): the jobs of one turn of the main process's loop
come in one frame, one ``pickle.loads``, one wake-up. An ``async def`` task runs
``arunner.aexecute`` on the loop; a plain function runs in one of ``threads`` threads of this
child.

At most ``slots`` (``-c``) jobs run at once. While tasks are short, the main process sends a
child more (``AsyncioPool``): those wait here, in order, and the next starts the moment a
running one ends, without a round trip through the main process. What goes back is, once a
loop turn, one frame: a pickled list of ``(key, next_key, outcome_wire)``: the outcome of
``key`` and the job started in its place (None: none), ``(None, QUEUED, keys)``: the jobs just
received that wait for a slot, or ``(None, TAKEN_BACK, keys)``: the waiting jobs handed back,
unstarted.

**Runners, not a task a job.** Jobs given a slot line up in ``ready``; an asyncio task of this
loop, a runner, takes them in turn: each job's coroutine runs in a ``Context`` of its own
(``coroutines.in_context``: its ``self.request`` and context variables are its own, as in a
task of its own), awaited by the runner, which is the job's ``asyncio.current_task()`` (what
``asyncio.timeout``, a ``TaskGroup`` or a time limit cancels). A job that ends without ever
waiting (a no-op, CPU work) lets its runner take the next ready job at once: 5,000 no-ops cost
a few tasks, not 5,000, and no loop turns between them. The first time a job waits, the runner
is its alone until it ends (no later job ever sees its task), and a new runner is started for
the jobs behind it. A runner ends when no job is ready.

A soft time limit (``SOFT``) is a cancellation turned into ``SoftTimeLimitExceeded`` inside the
coroutine (``coroutines.interruptible``); a hard one or ``terminate`` (``CANCEL``) cancels the
job's runner; if the job does not end within the pool's grace period, the main process kills
this child and starts another. A plain function in a thread cannot be cancelled: it gets no
soft limit, and its hard limit is the child's replacement.

A watchdog thread sees when the loop stops turning (a coroutine calling ``time.sleep``, CPU
work in an ``async def``) and logs which job blocks it, and for how long.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import gc
import logging
import os
import pickle
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from celeriac import signals
from celeriac.coroutines import Interrupt, in_context
from celeriac.exceptions import SoftTimeLimitExceeded, TaskRevokedError
from celeriac.execution import Outcome, execute, failure
from celeriac.worker.arunner import Prepared, aexecute, prepare
from celeriac.worker.child import PICKLE, _become_child, resident_kib
from celeriac.worker.frames import CHUNK, HEADER
from celeriac.worker.pool import outcome_wire
from celeriac.worker.runner import TaskRunner

log = logging.getLogger("celeriac.worker")
RUN, SOFT, CANCEL, TAKE_BACK, SLOTS = "run", "soft", "cancel", "take_back", "slots"
QUEUED = -2  # next_key of a frame listing jobs that wait for a slot
TAKEN_BACK = -3  # next_key of a frame listing waiting jobs handed back unstarted
RETIRING = -4  # next_key of a frame listing jobs handed back by a child past its memory limit
STARTED = -5  # next_key of a frame listing waiting jobs started in slots just added
BLOCKING_WARNING = 0.5  # seconds the loop may be stuck in one task before it is logged
BEAT = 0.05  # seconds between the loop's heartbeats that the watchdog checks
# Outcomes sent at once, at most: a runner that ends many jobs in one step (no-ops) sends them
# as it goes, so the main process records the first while the child runs the rest.
FLUSH_EVERY = 32


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (the ``asyncio`` extra), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@dataclass(slots=True)
class _Job:
    label: str  # name[id], for logs
    interrupt: Interrupt | None  # None: a plain function, in a thread (or did not decode)
    runner: asyncio.Task[None] | None = None  # the task awaiting it, once it started
    waited: bool = False  # it waited at least once: its runner takes no other job


Ready = tuple[int, Prepared | Outcome]  # a job with a slot or waiting for one


@dataclass
class _Server:
    loop: asyncio.AbstractEventLoop
    jobs_fd: int
    outcomes_fd: int
    runner: TaskRunner
    executor: concurrent.futures.ThreadPoolExecutor
    slots: int
    max_memory_kib: int | None = None  # past it (RSS), it takes no more jobs: ``_retire``
    running: dict[int, _Job] = field(default_factory=dict)  # in a slot: started, or ready
    ready: deque[Ready] = field(default_factory=deque)  # in a slot, for a runner to start
    # for a slot, oldest first: each decoded as it came, so a slot that frees starts it at once
    waiting: deque[Ready] = field(default_factory=deque)
    unsent: list[tuple[Any, ...]] = field(default_factory=list)  # sent once this turn ends
    queued: list[int] = field(default_factory=list)  # keys queued since the last report
    labels: dict[asyncio.Future[Any], str] = field(default_factory=dict)  # for the watchdog
    buffer: bytearray = field(default_factory=bytearray)
    starting: bool = False  # a runner was created and has not taken a job yet
    stopping: bool = False
    retiring: bool = False  # past its memory limit: every job sent from now on goes back
    measure: bool = False  # a job ended since the memory was last measured
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
            for message in pickle.loads(frame):
                self._handle(message)
        if self.queued:  # one frame for every job of this read that waits
            self._write((None, QUEUED, self.queued))
            self.queued = []
        self._spawn()

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
            if self.retiring:  # sent before the main process heard: it goes back, unstarted
                self._write((None, RETIRING, [value[0]]))
            elif len(self.running) < self.slots and not self.waiting:
                self._admit(value[0], prepare(self.runner, value))
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
        if kind == SLOTS:
            self._resize(value)
            return
        if kind == CANCEL and self._drop(value):
            return
        job = self.running.get(value)
        if job is None or job.interrupt is None or job.runner is None:
            return  # ended meanwhile, or a thread: the main process's grace period decides
        if kind == SOFT:
            job.interrupt.pending = SoftTimeLimitExceeded(f"{job.label} reached its soft limit")
        job.runner.cancel()

    def _resize(self, slots: int) -> None:
        """Run up to ``slots`` jobs at once from now on (``pool_grow`` / ``pool_shrink``): the
        waiting jobs that fit in the slots added start now, and the main process is told
        which. It never takes away a slot in use: it shrinks by idle slots only."""
        self.slots = slots
        started = []
        while self.waiting and len(self.running) < slots and not self.stopping:
            key, prepared = self.waiting.popleft()
            self._admit(key, prepared)
            started.append(key)
        if started:
            self._write((None, STARTED, started))

    def _retire(self) -> None:
        """Past the memory limit: hand back the jobs waiting for a slot, and every job sent
        from now on; the running ones end, then the main process stops this child and starts
        another in its place (``--max-memory-per-child``, as a prefork child retires)."""
        self.retiring = True
        keys = [key for key, _ in self.waiting]
        self.waiting.clear()
        self._write((None, RETIRING, keys))

    def _drop(self, key: int) -> bool:
        """Take ``key`` out of the jobs not started yet (cancelled before it started); False
        if it is not one of them."""
        for waiting in self.waiting:
            if waiting[0] == key:
                self.waiting.remove(waiting)
                self._report(key, failure(TaskRevokedError("cancelled before it started")))
                return True
        for ready in self.ready:
            if ready[0] == key:
                self.ready.remove(ready)
                self._ended_with(key, failure(TaskRevokedError("cancelled before it started")))
                return True
        return False

    def _admit(self, key: int, prepared: Prepared | Outcome) -> None:
        """Give ``key`` a slot: the next runner free starts it."""
        if isinstance(prepared, Outcome):  # it did not decode
            self.running[key] = _Job("", None)
        else:
            interrupt = Interrupt() if prepared.is_async else None
            self.running[key] = _Job(prepared.label, interrupt)
        self.ready.append((key, prepared))

    def _spawn(self) -> None:
        """A runner for the ready jobs, unless one is on its way."""
        if self.ready and not self.starting:
            self.starting = True
            self.loop.create_task(self._run_ready())

    async def _run_ready(self) -> None:
        """Run ready jobs one after another while they end without waiting (see the module)."""
        self.starting = False
        task = asyncio.current_task()
        assert task is not None
        while self.ready:
            key, prepared = self.ready.popleft()
            job = self.running[key]
            if isinstance(prepared, Outcome):
                self._ended_with(key, prepared)
                continue
            job.runner = task
            self.labels[task] = job.label
            task.set_name(job.label)
            outcome = await self._outcome_of(job, prepared)
            del self.labels[task]
            cancelled = task.cancelling() > 0
            while task.uncancel():  # the cancellations were the job's: spent with it
                pass
            self._ended_with(key, outcome)
            if job.waited or cancelled:
                break
        self._spawn()

    async def _outcome_of(self, job: _Job, prepared: Prepared) -> Outcome:
        def waits() -> None:
            job.waited = True
            self._spawn()  # the ready jobs behind it get a runner of their own

        try:
            if job.interrupt is not None:
                call = aexecute(self.runner, prepared, job.interrupt)
                return await in_context(call, contextvars.copy_context(), waits)  # type: ignore[no-any-return]
            waits()
            return await self.loop.run_in_executor(self.executor, _run_plain, self.runner, prepared)
        except asyncio.CancelledError:
            return failure(TaskRevokedError("cancelled (time limit or terminate)"))
        except Exception as exc:
            return failure(exc)

    def _ended_with(self, key: int, outcome: Outcome) -> None:
        """Report ``key``'s outcome, with the waiting job that takes its slot."""
        self.running.pop(key, None)
        self.measure = True
        following = self.waiting.popleft() if self.waiting and not self.stopping else None
        self._report(key, outcome, None if following is None else following[0])
        if following is not None:
            self._admit(*following)
        elif self.stopping and not self.running:
            self._finish()

    def _report(self, key: int, outcome: Outcome, next_key: int | None = None) -> None:
        self._write((key, next_key, outcome_wire(outcome)))

    def _write(self, report: tuple[Any, ...]) -> None:
        """Send ``report`` with the others of this loop turn: one frame, one write, one wake-up
        of the main process, for the many jobs that end at once (``FLUSH_EVERY`` at most)."""
        if not self.unsent:
            self.loop.call_soon(self._flush)
        self.unsent.append(report)
        if len(self.unsent) >= FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        limit = self.max_memory_kib
        if limit and self.measure and not self.retiring:
            # Measured once a flush (a loop turn that ended jobs), not once a job: reading
            # /proc costs about 30 us, as much as a no-op job's whole run here. Its report
            # goes in the frame of the outcomes: the main process hears of both at once.
            self.measure = False
            if resident_kib() > limit:
                self._retire()
        reports, self.unsent = self.unsent, []
        if not reports:
            return
        try:
            write_frames(self.outcomes_fd, [pickle.dumps(reports, PICKLE)])
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
    max_memory_kib: int | None = None,
) -> None:
    """Serve jobs on one event loop until told to stop; see the module docstring. As it
    exits it sends Celery's ``worker_process_shutdown`` (``pid``, ``exitcode``)."""
    if not _become_child(parent_pid):
        return
    runner.middleware.child_start()
    # What the child inherited (the whole worker: imports, the app, the main's buffers) stays
    # for its life: out of the collector's sight, each full collection scans only what the
    # jobs made (one took 30-90 ms, every few seconds, with it all in sight).
    gc.collect()
    gc.freeze()
    exitcode = 1
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="celeriac-sync")
    server = _Server(loop, jobs_fd, outcomes_fd, runner, executor, slots, max_memory_kib)
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
