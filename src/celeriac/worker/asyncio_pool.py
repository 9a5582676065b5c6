"""``-P asyncio``: ``--processes`` children, each running up to ``-c`` jobs at once on one event
loop (uvloop when installed).

It is the prefork pool's machinery with many jobs per child: a forked child per process, a pipe
of frames down (jobs, soft limits, cancellations: ``asyncio_child.py``) and a pipe of outcome
frames back, and this process knows which jobs each child runs. So leases, the message owner
(``Dispatcher``) and the middleware are the other pools'. Time limits and ``terminate`` are
cancellations sent down the pipe; a job that has not ended ``CANCEL_GRACE`` seconds after its
cancellation (a coroutine that swallows it, a plain function in a thread, a loop blocked by
``time.sleep``) gets its child killed and replaced: the child's other jobs are reported lost, as
prefork does for a child that died, and their messages go back to the queue.

While tasks are short (under ``AHEAD_UNDER`` on average lately), a child is sent up to ``-c``
jobs more than it runs: they wait in the child, which starts the next the moment a running one
ends, so a slot never waits for a round trip through this process. The child says which jobs
wait (``QUEUED``) and which starts as each ends, so time limits count from the real start. A job
that waited and never started (the worker stopping, its child replaced) comes back
``RETURNED``: it runs again, or goes back to the queue. So does every job waiting in a child
once one has waited ``AHEAD_UNDER``: the tasks ahead turned out long, so no more are sent ahead
until the run times say they are short again, and the dispatcher gives the messages back to the
queue for another worker if no slot frees soon (``give_back_stale``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing
import os
import pickle
import selectors
import time
from multiprocessing.connection import wait
from typing import Any

from celeriac.worker.asyncio_child import (
    CANCEL,
    QUEUED,
    RETIRING,
    RUN,
    SOFT,
    STARTED,
    TAKE_BACK,
    TAKEN_BACK,
    asyncio_child_main,
)
from celeriac.worker.asyncio_procs import AsyncioProcess as _Process
from celeriac.worker.asyncio_procs import (
    next_deadline,
    resize,
    spread_growth,
    spread_shrink,
    warn_soft_limit_ignored,
)
from celeriac.worker.children import describe_exit
from celeriac.worker.frames import FrameReader
from celeriac.worker.pool import (
    Ending,
    ExecutionPool,
    Finished,
    Job,
    Running,
    killed,
    lost,
    outcome_from_wire,
    returned,
)
from celeriac.worker.runner import TaskRunner

log = logging.getLogger("celeriac.worker")
ASYNCIO_CONCURRENCY = 100  # jobs per child without -c (or worker_concurrency)
CANCEL_GRACE = 2.0  # seconds a cancelled job has to end before its child is replaced
AHEAD_UNDER = 1.0  # seconds: while tasks take less on average, children get jobs ahead
MAX_THREADS = 32  # threads per child for plain functions: min(MAX_THREADS, -c)
PIPE_BYTES = 1 << 20  # the job pipe's size: jobs never wait on a child whose loop is blocked
_F_SETPIPE_SZ = 1031  # Linux's fcntl to size a pipe


class AsyncioPool(ExecutionPool):
    """Event-loop children, ``slots`` jobs each; see the module docstring."""

    can_terminate = True

    def __init__(
        self,
        runner: TaskRunner,
        slots: int,
        *,
        processes: int = 1,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
    ) -> None:
        self.runner = runner
        self.max_tasks = max_tasks_per_child
        self.max_memory_kib = max_memory_per_child
        self._sizes = [slots] * processes  # slots of the children to start; then: theirs
        self._ctx = multiprocessing.get_context("fork")
        self._procs: list[_Process] = []
        self._selector = selectors.DefaultSelector()
        self._wake_fds: list[Any] = []
        self._limited = 0  # running jobs with a time limit or a kill pending: poll checks them
        self._typical: float | None = None  # moving average of the tasks' run times
        self._acks_late: dict[str, bool] = {}  # task name -> acknowledged after it runs
        self._unlimited: set[str] = set()  # plain functions told to have no soft limit here
        self._closing = False  # stop() was called: no child is started any more

    def start(self) -> None:
        """Fork the children."""
        for slots in self._sizes:
            self._procs.append(self._spawn(slots))

    def _spawn(self, slots: int) -> _Process:
        job_reader, job_writer = os.pipe()
        outcome_reader, outcome_writer = os.pipe()
        with contextlib.suppress(OSError):  # not Linux, or above the system's maximum
            fcntl.fcntl(job_writer, _F_SETPIPE_SZ, PIPE_BYTES)
            fcntl.fcntl(outcome_writer, _F_SETPIPE_SZ, PIPE_BYTES)
        # MAX_THREADS at most: made as needed, so never more than the jobs running at once.
        args = (job_reader, outcome_writer, self.runner, slots, MAX_THREADS, os.getpid())
        process = self._ctx.Process(
            target=asyncio_child_main,
            args=(*args, self.max_memory_kib),
            name="celeriac-asyncio",
            daemon=True,
        )
        process.start()
        os.close(job_reader)
        os.close(outcome_writer)
        proc = _Process(process, job_writer, FrameReader(outcome_reader), slots)
        self._selector.register(outcome_reader, selectors.EVENT_READ, ("outcome", proc))
        self._selector.register(process.sentinel, selectors.EVENT_READ, ("exit", proc))
        return proc

    def size(self) -> int:
        """Jobs it runs at once: the slots of the children serving (``-c`` each at first)."""
        if not self._procs:
            return sum(self._sizes)
        return sum(p.slots for p in self._procs if not p.retiring)

    def pids(self) -> list[int]:
        """The process ids of the children."""
        return [p.process.pid for p in self._procs if p.process.pid is not None]

    def free_slots(self) -> int:
        """Slots without a job, in children that take jobs, and, while tasks are short, as
        many again for jobs that wait in the children (see the module); a child is never
        sent more than its ``--max-tasks-per-child``."""
        typical = self._typical
        ahead = 2 if typical is not None and typical < AHEAD_UNDER else 1
        budget = self.max_tasks
        free = 0
        for proc in self._procs:  # a plain loop: the dispatcher asks once a message
            held = len(proc.running) + len(proc.waiting)
            room = proc.slots * ahead - held
            if budget is not None:
                room = min(room, budget - proc.given)
            if room > 0 and not proc.stopping and not proc.retiring:
                free += room
        return free

    def submit(self, job: Job) -> None:
        """Give a job to the child holding the fewest (it may wait there for a slot: the
        child says so). It is written down the pipe with the others of this turn of the
        worker's loop, at the next :meth:`poll`: one write and one wake-up of the child for
        the whole batch, rather than one a job. A child given its ``--max-tasks-per-child``
        jobs is retired: a new child takes its place at once."""
        procs = self._procs
        proc = procs[0] if len(procs) == 1 else min(procs, key=_Process.load)
        proc.running[job.key] = Running(job)
        if job.soft_time_limit is not None or job.time_limit is not None:
            self._limited += 1
            if job.soft_time_limit is not None:
                self._warn_soft_limit_ignored(job.task)
        proc.queue((RUN, job.wire()))  # a dead child's exit reports this job lost
        proc.given += 1
        if self.max_tasks is not None and proc.given >= self.max_tasks:
            self._retire(proc)

    def _retire(self, proc: _Process) -> None:
        """``proc`` gets no more jobs: a new child serves in its place from now on, and it is
        told to stop once it holds no job (``_stop_retired``)."""
        if proc.retiring:
            return
        proc.retiring = True
        self._procs.append(self._spawn(proc.slots))
        log.info("process %s retires after %d tasks", proc.process.pid, proc.given)

    def _stop_retired(self) -> None:
        for proc in self._procs:
            if proc.retiring and not proc.stopping and not proc.held():
                proc.stopping = True
                proc.send(None)

    def _warn_soft_limit_ignored(self, task: str) -> None:
        if task not in self._unlimited:  # once per task name
            self._unlimited.add(task)
            warn_soft_limit_ignored(self.runner.tasks.get(task))

    def pool_grow(self, n: int = 1) -> None:
        """``n`` more slots, each to the child with the fewest (the semaphore of jobs at
        once: no process is started)."""
        if not self._procs:  # before start: the children start with these
            self._sizes = spread_growth(self._sizes, n)
            return
        serving = [p for p in self._procs if p.serving]
        resize(serving, spread_growth([p.slots for p in serving], n))

    def pool_shrink(self, n: int = 1) -> int:
        """Up to ``n`` slots fewer, idle ones only; see :meth:`ExecutionPool.pool_shrink`."""
        if not self._procs:
            before = sum(self._sizes)
            self._sizes = spread_shrink(self._sizes, self._sizes, n)
            return before - sum(self._sizes)
        serving = [p for p in self._procs if p.serving]
        sizes = [p.slots for p in serving]
        after = spread_shrink(sizes, [max(0, p.slots - p.held()) for p in serving], n)
        resize(serving, after)
        return sum(sizes) - sum(after)

    def running(self) -> list[Job]:
        """Jobs in flight, those waiting in a child for a slot included."""
        return [r.job for p in self._procs for r in [*p.running.values(), *p.waiting.values()]]

    def poll(self, timeout: float, wake_fds: list[Any]) -> list[Finished]:
        """Send the jobs submitted since the last call, collect outcomes and deaths, enforce
        time limits; see :meth:`ExecutionPool.poll`."""
        for proc in self._procs:
            if proc.outbox:
                proc.flush()
        self._watch_wake_fds(wake_fds)
        finished: list[Finished] = []
        exited: list[_Process] = []
        if self._limited:
            timeout = min(timeout, next_deadline(self._procs, CANCEL_GRACE))
        for key, _ in self._selector.select(timeout):
            kind, proc = key.data
            if kind == "outcome":
                finished.extend(self._outcomes_of(proc))
            elif kind == "exit":
                exited.append(proc)
        for proc in exited:
            finished.extend(self._outcomes_of(proc))
            finished.extend(self._replace(proc))
        self._look_after()
        return finished

    def _look_after(self) -> None:
        """The checks of each poll: time limits, jobs stuck waiting, retired children."""
        if self._limited:
            self._enforce_limits()
        if self._waiting():
            self._take_back_stuck()
        if self.max_tasks is not None or self.max_memory_kib is not None:
            self._stop_retired()

    def _waiting(self) -> bool:
        return any(p.waiting for p in self._procs)

    def _watch_wake_fds(self, wake_fds: list[Any]) -> None:
        if wake_fds == self._wake_fds:
            return
        for fd in self._wake_fds:
            self._selector.unregister(fd)
        for fd in wake_fds:
            self._selector.register(fd, selectors.EVENT_READ, ("wake", None))
        self._wake_fds = list(wake_fds)

    def _outcomes_of(self, proc: _Process) -> list[Finished]:
        finished: list[Finished] = []
        for frame in proc.outcomes.read():
            for key, next_key, wire in pickle.loads(frame):  # one frame a turn of the child
                if key is None:
                    finished.extend(self._news(proc, next_key, wire))
                    continue
                if next_key is not None and next_key in proc.waiting:
                    started = proc.running[next_key] = proc.waiting.pop(next_key)
                    started.started = time.monotonic()
                run = proc.running.pop(key, None) or proc.waiting.pop(key, None)
                if run is None:
                    continue
                self._forget(run)
                if run.kill_reason is not None:  # cancelled in time: killed, whatever it says
                    finished.append(killed(run.job, run.kill_reason))
                    continue
                outcome = outcome_from_wire(wire)
                finished.append(Finished(run.job, outcome))
                typical = self._typical
                runtime = outcome.runtime
                self._typical = runtime if typical is None else 0.9 * typical + 0.1 * runtime
        return finished

    def _news(self, proc: _Process, what: int, keys: list[int]) -> list[Finished]:
        """A child's report that is no outcome: jobs that wait there for a slot (``QUEUED``),
        waiting jobs started in new slots (``STARTED``), or jobs it handed back unstarted
        (``TAKEN_BACK``; ``RETIRING``: past its memory limit)."""
        if what == QUEUED:  # these wait in the child: not started
            for waiting in keys:
                if waiting in proc.running:
                    proc.waiting[waiting] = proc.running.pop(waiting)
            return []
        if what == STARTED:  # waiting jobs started in slots just added (pool_grow)
            now = time.monotonic()
            for key in keys:
                if key in proc.waiting:
                    started = proc.running[key] = proc.waiting.pop(key)
                    started.started = now
            return []
        if what == TAKEN_BACK:
            proc.taking_back = False
        elif what == RETIRING:  # past its memory limit: these come back, it gets no more
            if not self._closing:
                self._retire(proc)
        else:
            return []
        back = [proc.waiting.pop(k, None) or proc.running.pop(k, None) for k in keys]
        proc.given -= len(keys)
        return self._returned([run for run in back if run is not None])

    def _forget(self, run: Running) -> None:
        job = run.job
        if job.soft_time_limit is not None or job.time_limit is not None:
            self._limited -= 1
        if run.kill_sent_at is not None and job.time_limit is None:
            self._limited -= 1  # terminate() counted it

    def _replace(self, proc: _Process) -> list[Finished]:
        """Report the dead child's jobs (killed, or lost) and start a child in its place."""
        proc.process.join(1)
        how = describe_exit(proc.process.exitcode)
        finished = []
        for run in proc.running.values():
            self._forget(run)
            if run.kill_reason is not None:
                finished.append(killed(run.job, run.kill_reason))
                continue
            job = run.job
            log.warning(
                "process %s running %s[%s] %s", proc.process.pid, job.task, job.task_id, how
            )
            finished.append(lost(job, f"the process running the task was {how}"))
        finished.extend(self._take_back(proc))
        proc.running.clear()
        self._selector.unregister(proc.outcomes.fd)
        self._selector.unregister(proc.process.sentinel)
        proc.close()
        if proc in self._procs:
            if proc.retiring:  # a child serves in its place already
                self._procs.remove(proc)
            else:
                self._procs[self._procs.index(proc)] = self._spawn(proc.slots)
        return finished

    def _take_back(self, proc: _Process, *, stopping: bool = False) -> list[Finished]:
        """The jobs that waited in ``proc`` and never started: back to the dispatcher. When
        the worker is ``stopping``, one acknowledged already cannot go back to the queue: it
        is reported lost at shutdown (recorded as a failure), as a running one would be."""
        runs = list(proc.waiting.values())
        proc.waiting.clear()
        if not stopping:
            return self._returned(runs)
        late = [run for run in runs if self._late(run.job.task)]
        finished = self._returned(late)
        for run in runs:
            if not self._late(run.job.task):
                self._forget(run)
                finished.append(lost(run.job, "worker shut down", Ending.SHUTDOWN))
        return finished

    def _returned(self, runs: list[Running]) -> list[Finished]:
        back = []
        for run in runs:
            self._forget(run)
            back.append(killed(run.job, run.kill_reason) if run.kill_reason else returned(run.job))
        return back

    def _take_back_stuck(self) -> None:
        """Ask for the jobs waiting in a child back once one has waited ``AHEAD_UNDER`` (its
        ``started`` is when it was sent), and send no more ahead: the tasks are long now.

        A task acknowledged before it runs (``acks_late=False``) stays: its message is gone
        from the broker, so it must run here.
        """
        limit = time.monotonic() - AHEAD_UNDER
        for proc in self._procs:
            if not proc.waiting or proc.stopping or proc.taking_back:
                continue
            oldest = next(iter(proc.waiting.values()))
            if oldest.started < limit:
                self._typical = max(self._typical or 0.0, 2 * AHEAD_UNDER)
                keys = [k for k, run in proc.waiting.items() if self._late(run.job.task)]
                if keys:
                    proc.taking_back = proc.send((TAKE_BACK, keys))

    def _late(self, task: str) -> bool:
        """Whether ``task``'s message is acknowledged after it runs (as the dispatcher
        decides: the task's option, else ``task_acks_late``)."""
        late = self._acks_late.get(task)
        if late is None:
            found = self.runner.tasks.get(task)
            option = found.acks_late if found is not None else None
            conf = found.app.conf.task_acks_late if found is not None else True
            late = self._acks_late[task] = bool(conf if option is None else option)
        return late

    def _enforce_limits(self) -> None:
        now = time.monotonic()
        for proc in self._procs:
            if proc.stopping:
                continue
            for key, run in list(proc.running.items()):
                job, elapsed = run.job, now - run.started
                soft = job.soft_time_limit
                if soft is not None and not run.soft_sent and elapsed >= soft:
                    run.soft_sent = True
                    proc.send((SOFT, key))
                hard = job.time_limit
                if hard is not None and elapsed >= hard and run.kill_reason is None:
                    run.kill_reason, run.kill_sent_at = Ending.TIME_LIMIT, now
                    proc.send((CANCEL, key))
                if run.kill_sent_at is not None and now - run.kill_sent_at >= CANCEL_GRACE:
                    log.warning(
                        "%s[%s] did not end %.0fs after it was cancelled: replacing its "
                        "process %s (its %d other jobs are lost)",
                        job.task,
                        job.task_id,
                        CANCEL_GRACE,
                        proc.process.pid,
                        len(proc.running) - 1,
                    )
                    proc.stopping = True  # no more jobs: its exit is seen by the next poll
                    _kill(proc)
                    break

    def terminate(self, task_id: str, signum: int) -> bool:
        """Cancel the job running ``task_id`` (``signum`` is not sent: the job's child runs
        other jobs too); its child is replaced if it does not end within ``CANCEL_GRACE``."""
        for proc in self._procs:
            for key, run in [*proc.running.items(), *proc.waiting.items()]:
                if run.job.task_id == task_id and run.kill_reason is None:
                    run.kill_reason, run.kill_sent_at = Ending.TERMINATED, time.monotonic()
                    if run.job.time_limit is None:
                        self._limited += 1  # checked by poll until it ends
                    proc.send((CANCEL, key))
                    return True
        return False

    def stop(self, timeout: float) -> list[Finished]:
        """Let running jobs finish for up to ``timeout``, then kill the rest; see the base."""
        self._closing = True
        for proc in self._procs:
            proc.stopping = True
            proc.send(None)
        finished: list[Finished] = []
        deadline = time.monotonic() + timeout
        # Jobs waiting in a child for a slot do not start once it is told to stop.
        while any(p.running for p in self._procs) and time.monotonic() < deadline:
            busy = [p for p in self._procs if p.running]
            fds = [p.outcomes.fd for p in busy] + [p.process.sentinel for p in busy]
            wait(fds, max(deadline - time.monotonic(), 0))
            for proc in busy:
                finished.extend(self._outcomes_of(proc))
                if proc.running and not proc.process.is_alive():
                    finished.extend(self._outcomes_of(proc))
                    finished.extend(lost(r.job, "worker shut down") for r in proc.running.values())
                    proc.running.clear()
        for proc in self._procs:
            finished.extend(self._outcomes_of(proc))  # sent already: they ran, keep them
            finished.extend(self._take_back(proc, stopping=True))  # dropped when told to stop
            if proc.running:
                _kill(proc)
                finished.extend(
                    lost(r.job, "worker shut down", Ending.SHUTDOWN) for r in proc.running.values()
                )
                proc.running.clear()
        for proc in self._procs:
            proc.process.join(2)
            if proc.process.is_alive():
                _kill(proc)
                proc.process.join(2)
            proc.close()
        self._procs.clear()
        self._selector.close()
        return finished


def _kill(proc: _Process) -> None:
    proc.kill()
