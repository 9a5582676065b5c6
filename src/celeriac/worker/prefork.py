"""The default pool: one forked child process per slot, each running one task at a time.

The main process knows which job each child runs, so a hard time limit or a ``terminate`` is a
signal to that child and a fresh child in its place; a child that dies on its own is replaced
the same way, and its job is reported lost so the main process can give the message back.

A child running a task that is usually short (under ``SHORT_TASK``, measured here per task
name) may be offered its next jobs in its shared-memory mailbox (``mailbox.py``), which it takes
the moment its task ends, without waiting for a round trip through this process. How many
depends on how short: about ``AHEAD_SECONDS`` of work, at most ``MAX_DEPTH`` jobs, one for a
task near ``SHORT_TASK``. Offers not taken are retracted as soon as the task ahead runs past
``SHORT_TASK``, or, newest first, when another child comes free, so an offered job never waits
behind a slow one.

The hand-off is cheap on purpose, since this process is the worker's bottleneck: a job goes down
as its ``JobWire`` (the message's bytes; the child decodes them), an outcome comes back as the
few values of ``outcome_wire`` in a frame on a pipe of its own (``frames.py``: every waiting
outcome read at once, without blocking), both through ``pickle`` on plain values, and the
selector keeps every pipe registered for the pool's life.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import selectors
import signal
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from celeriac.worker.child import RETIRING, SOFT_LIMIT_SIGNAL, child_main
from celeriac.worker.children import ChildProcess, describe_exit
from celeriac.worker.frames import FrameReader
from celeriac.worker.mailbox import MAX_DEPTH, Mailbox
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
KILL_GRACE = 1.0  # seconds between a terminate signal and SIGKILL
SHORT_TASK = 0.05  # seconds: a child running a task usually shorter may be offered next jobs
AHEAD_SECONDS = 0.005  # a child's mailbox holds about this much work (at most MAX_DEPTH jobs)


class PreforkPool(ExecutionPool):
    """Forked children, one task each; see the module docstring."""

    can_terminate = True

    def __init__(
        self,
        runner: TaskRunner,
        concurrency: int,
        *,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
    ) -> None:
        self.runner = runner
        self.concurrency = concurrency
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child
        self._ctx = multiprocessing.get_context("fork")
        self._children: list[ChildProcess] = []
        # One selector for the pool's life: building one per poll costs more than the rest of
        # a no-op task's handling.
        self._selector = selectors.DefaultSelector()
        self._wake_fds: list[Any] = []
        self._typical: dict[str, float] = {}  # task name -> moving average of its run time
        self._overall: float | None = None  # moving average of every task's run time
        self._returned: list[Finished] = []  # taken back outside of a poll
        self._leaving: list[BaseProcess] = []  # stopped by pool_shrink, not reaped yet

    def start(self) -> None:
        """Fork the children."""
        for _ in range(self.concurrency):
            self._children.append(self._spawn())

    def _spawn(self) -> ChildProcess:
        job_reader, job_writer = self._ctx.Pipe(duplex=False)
        outcome_reader, outcome_writer = os.pipe()
        mailbox = Mailbox(self._ctx)
        process = self._ctx.Process(
            target=child_main,
            args=(
                job_reader,
                outcome_writer,
                self.runner,
                self.max_tasks_per_child,
                self.max_memory_per_child,
                os.getpid(),
                mailbox,
            ),
            name="celeriac-child",
            daemon=True,
        )
        process.start()
        job_reader.close()
        os.close(outcome_writer)
        child = ChildProcess(process, job_writer, FrameReader(outcome_reader), mailbox)
        self._selector.register(outcome_reader, selectors.EVENT_READ, ("outcome", child))
        self._selector.register(process.sentinel, selectors.EVENT_READ, ("exit", child))
        return child

    def size(self) -> int:
        """Children serving jobs."""
        return self.concurrency

    def pool_grow(self, n: int = 1) -> None:
        """Fork ``n`` more children."""
        self._reap()
        for _ in range(n):
            self._children.append(self._spawn())
        self.concurrency += n

    def pool_shrink(self, n: int = 1) -> int:
        """Stop up to ``n`` idle children; see :meth:`ExecutionPool.pool_shrink`."""
        idle = [c for c in self._children if not c.jobs() and not c.retiring][:n]
        for child in idle:
            self._children.remove(child)
            self._selector.unregister(child.outcomes.fd)
            self._selector.unregister(child.process.sentinel)
            self._tell_to_stop(child)  # it exits (worker_process_shutdown), and is reaped later
            child.close()
            self._leaving.append(child.process)
        self.concurrency -= len(idle)
        self._reap()
        return len(idle)

    def _reap(self) -> None:
        """Join the children stopped by :meth:`pool_shrink` that have exited."""
        for process in list(self._leaving):
            process.join(0)
            if process.exitcode is not None:
                self._leaving.remove(process)

    def pids(self) -> list[int]:
        """The process ids of the children."""
        return [c.process.pid for c in self._children if c.process.pid is not None]

    def free_slots(self) -> int:
        """Idle children (a child that died is replaced as soon as its exit is seen)."""
        return sum(1 for c in self._children if c.running is None and not c.retiring)

    def submit(self, job: Job) -> None:
        """Send a job to an idle child."""
        child = next(c for c in self._children if c.running is None and not c.retiring)
        self._run(child, job)
        # If the child died, its exit is reported soon, with this job as lost.
        with contextlib.suppress(OSError):
            child.send(job.wire())

    def running(self) -> list[Job]:
        """Jobs in flight, offered ones included."""
        return [job for c in self._children for job in c.jobs()]

    def offer(self, job: Job) -> bool:
        """Leave ``job`` in the mailbox of a child running a short task, the one with the
        fewest offers; see the module."""
        now = time.monotonic()
        best: ChildProcess | None = None
        for child in self._children:
            if self._room(child, now) > 0 and (
                best is None or len(child.offered) < len(best.offered)
            ):
                best = child
        if best is None or not best.mailbox.offer(job.wire()):
            return False
        best.offered.append(job)
        return True

    def _run(self, child: ChildProcess, job: Job) -> None:
        """Book ``job`` as running in ``child``, and how many it may be offered behind it."""
        child.running = Running(job)
        typical = self._typical.get(job.task, SHORT_TASK)
        child.depth = _depth(typical) if typical < SHORT_TASK else 0

    def _room(self, child: ChildProcess, now: float) -> int:
        """How many more jobs ``child`` may be offered now."""
        run = child.running
        if (
            run is None
            or child.retiring
            or run.kill_reason is not None
            or now - run.started >= SHORT_TASK
        ):
            return 0
        return child.depth - len(child.offered)

    def can_offer(self) -> bool:
        """True when a child running a short task has room in its mailbox."""
        now = time.monotonic()
        return any(self._room(c, now) > 0 for c in self._children)

    def offered(self) -> int:
        """Offered jobs not known to have started."""
        return sum(len(c.offered) for c in self._children)

    def ahead_capacity(self) -> int:
        """How many jobs the children could hold in their mailboxes, by the typical run time
        of the tasks lately (not only the busy ones: children that all came free during a
        round trip need the most next)."""
        overall = self._overall
        if overall is None or overall >= SHORT_TASK:
            return 0
        return len(self._children) * _depth(overall)

    def retract_offers(self, most: int | None = None) -> list[Finished]:
        """Take back offers not taken yet; see :meth:`ExecutionPool.retract_offers`."""
        if most is None:
            return [f for c in self._children for f in self._retract(c)]
        back: list[Finished] = []
        for _ in range(most):
            fullest = max(self._children, key=lambda c: len(c.offered), default=None)
            taken = self._retract(fullest, 1) if fullest is not None else []
            if not taken:
                break
            back.extend(taken)
        return back

    def _retract(self, child: ChildProcess, most: int = MAX_DEPTH) -> list[Finished]:
        """Take back up to ``most`` of ``child``'s newest offers not taken yet (one taken
        already is about to be reported as started)."""
        if not child.offered:
            return []
        count = child.mailbox.retract(most)
        back = [child.offered.pop() for _ in range(count)]
        for job in back:
            child.terminate_next.pop(job.key, None)
        return [returned(job) for job in reversed(back)]

    def poll(self, timeout: float, wake_fds: list[Any]) -> list[Finished]:
        """Collect outcomes and deaths, enforce time limits; see :meth:`ExecutionPool.poll`."""
        self._watch_wake_fds(wake_fds)
        exited: list[ChildProcess] = []
        finished, self._returned = self._returned, []
        wait_for = 0.0 if finished else min(timeout, self._next_deadline())
        for key, _ in self._selector.select(wait_for):
            kind, child = key.data
            if kind == "outcome":
                finished.extend(self._outcomes_of(child))
            elif kind == "exit":
                exited.append(child)
        for child in exited:
            finished.extend(self._outcomes_of(child))
            finished.extend(self._replace(child))
        self._enforce_limits()
        finished.extend(self._retract_behind_slow_tasks())
        if self._leaving:
            self._reap()
        return finished

    def _retract_behind_slow_tasks(self) -> list[Finished]:
        now = time.monotonic()
        behind_slow = [
            c
            for c in self._children
            if c.offered and c.running is not None and now - c.running.started >= SHORT_TASK
        ]
        return [f for c in behind_slow for f in self._retract(c)]

    def _watch_wake_fds(self, wake_fds: list[Any]) -> None:
        if wake_fds == self._wake_fds:
            return
        for fd in self._wake_fds:
            self._selector.unregister(fd)
        for fd in wake_fds:
            self._selector.register(fd, selectors.EVENT_READ, ("wake", None))
        self._wake_fds = list(wake_fds)

    def _outcomes_of(self, child: ChildProcess) -> list[Finished]:
        finished = []
        for frame in child.outcomes.read():
            key, next_key, wire = pickle.loads(frame)
            if child.running is None or key != child.running.job.key:
                continue
            outcome = outcome_from_wire(wire)
            finished.append(Finished(child.running.job, outcome))
            self._learn(child.running.job.task, outcome.runtime)
            child.running = None
            child.retiring = next_key == RETIRING
            if child.offered and child.offered[0].key == next_key:
                self._started_offer(child, child.offered.popleft())
            elif child.offered and not child.retiring:
                self._send_stranded_offer(child)
        return finished

    def _started_offer(self, child: ChildProcess, job: Job) -> None:
        """Book an offered job as running in ``child`` (and terminate it if asked meanwhile)."""
        self._run(child, job)
        signum = child.terminate_next.pop(job.key, None)
        if signum is not None:
            self.terminate(job.task_id, signum)

    def _send_stranded_offer(self, child: ChildProcess) -> None:
        """``child`` found its mailbox empty when its task ended and now waits on its pipe,
        while jobs were offered to it since: the oldest goes down the pipe now (the rest stay
        offered), rather than waiting until the dispatcher takes them back."""
        count = child.mailbox.retract()  # the child takes nothing while it waits on its pipe
        stranded = [child.offered.pop() for _ in range(count)][::-1]
        if not stranded:
            return
        first, rest = stranded[0], stranded[1:]
        for job in rest:
            if child.mailbox.offer(job.wire()):
                child.offered.append(job)
            else:  # cannot happen (it held them a moment ago): given back to be run elsewhere
                child.terminate_next.pop(job.key, None)
                self._returned.append(returned(job))
        with contextlib.suppress(OSError):  # a child that died is reported with the job lost
            child.send(first.wire())
        self._started_offer(child, first)

    def _learn(self, task: str, runtime: float) -> None:
        previous = self._typical.get(task)
        self._typical[task] = runtime if previous is None else 0.8 * previous + 0.2 * runtime
        overall = self._overall
        self._overall = runtime if overall is None else 0.9 * overall + 0.1 * runtime

    def _collect_outcomes(self) -> list[Finished]:
        return [f for child in self._children for f in self._outcomes_of(child)]

    def _replace(self, child: ChildProcess) -> list[Finished]:
        """Report the dead child's job lost (if it had one) and start a child in its place."""
        child.process.join(1)  # its sentinel fired: it has exited, or is about to be reaped
        finished = [self._lost(child)] if child.running is not None else []
        finished.extend(self._retract(child))
        if child.offered:  # taken: it started, and died with the process
            child.running = Running(child.offered.popleft())
            finished.append(self._lost(child))
        child.offered.clear()
        self._selector.unregister(child.outcomes.fd)
        self._selector.unregister(child.process.sentinel)
        child.close()
        self._children[self._children.index(child)] = self._spawn()
        return finished

    def _lost(self, child: ChildProcess) -> Finished:
        assert child.running is not None
        job, reason = child.running.job, child.running.kill_reason
        if reason is not None:
            return killed(job, reason)
        how = describe_exit(child.process.exitcode)
        log.warning("process %s running %s[%s] %s", child.process.pid, job.task, job.task_id, how)
        return lost(job, f"the process running the task was {how}")

    def _next_deadline(self) -> float:
        now, soonest = time.monotonic(), 3600.0
        for child in self._children:
            run = child.running
            if run is None:
                continue
            soonest = min(soonest, run.next_deadline(now, KILL_GRACE))
            if child.offered:
                soonest = min(soonest, run.started + SHORT_TASK - now)
        return max(soonest, 0.0)

    def _enforce_limits(self) -> None:
        now = time.monotonic()
        for child in self._children:
            run = child.running
            if run is None:
                continue
            job, elapsed = run.job, now - run.started
            if (
                job.soft_time_limit is not None
                and not run.soft_sent
                and elapsed >= job.soft_time_limit
            ):
                run.soft_sent = True
                self._signal(child, SOFT_LIMIT_SIGNAL)
            if job.time_limit is not None and elapsed >= job.time_limit and run.kill_reason is None:
                run.kill_reason = Ending.TIME_LIMIT
                self._signal(child, signal.SIGKILL)
            if run.kill_sent_at is not None and now - run.kill_sent_at >= KILL_GRACE:
                self._signal(child, signal.SIGKILL)

    @staticmethod
    def _signal(child: ChildProcess, signum: int) -> None:
        if child.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.process.pid, signum)

    def terminate(self, task_id: str, signum: int) -> bool:
        """Signal the child running ``task_id``; SIGKILL follows if it does not die."""
        for child in self._children:
            run = child.running
            if run is not None and run.job.task_id == task_id and run.kill_reason is None:
                run.kill_reason = Ending.TERMINATED
                run.kill_sent_at = time.monotonic()
                self._signal(child, signum)
                return True
            keys = [job.key for job in child.offered if job.task_id == task_id]
            if keys:
                # Take it back with the offers after it; they come back from the next poll,
                # and the worker refuses it as revoked. If it was taken, it has started: kill
                # it once its start is reported.
                behind = len(child.offered) - [j.key for j in child.offered].index(keys[0])
                self._returned.extend(self._retract(child, behind))
                if child.offered and child.offered[-1].key == keys[0]:
                    child.terminate_next[keys[0]] = signum
                return True
        return False

    def stop(self, timeout: float) -> list[Finished]:
        """Let running jobs finish for up to ``timeout``, then kill the rest; see the base.

        Offered jobs that have not started come back ``returned``.
        """
        finished: list[Finished] = [*self._returned, *self.retract_offers()]
        self._returned = []
        for child in self._children:
            if child.running is None:
                self._tell_to_stop(child)
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            finished.extend(self._stop_round(deadline - time.monotonic()))
        # Outcomes already sent are kept, even when there is no time to wait for more: their
        # tasks ran, and must not run again. Then offers the children did not take come back.
        finished.extend(self._collect_outcomes())
        finished.extend(self.retract_offers())
        for child in self._children:
            held = child.jobs()
            if held:
                self._signal(child, signal.SIGKILL)
                child.process.join(5)
            finished.extend(lost(job, "worker shut down", Ending.SHUTDOWN) for job in held)
            child.running = None
            child.offered.clear()
        for child in self._children:
            child.process.join(2)
            if child.process.is_alive():
                self._signal(child, signal.SIGKILL)
            child.close()
        self._children.clear()
        for process in self._leaving:
            process.join(2)
        self._leaving.clear()
        self._selector.close()
        return finished

    def _stop_round(self, timeout: float) -> list[Finished]:
        busy = [c for c in self._children if c.running is not None]
        wait([c.outcomes.fd for c in busy] + [c.process.sentinel for c in busy], max(timeout, 0))
        finished = self._collect_outcomes()
        for child in busy:
            if child.running is None:
                self._tell_to_stop(child)
            elif not child.process.is_alive():
                finished.append(self._lost(child))
                finished.extend(lost(job, "worker shut down") for job in child.offered)
                child.running = None
                child.offered.clear()
        return finished

    @staticmethod
    def _tell_to_stop(child: ChildProcess) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            child.send(None)


def _depth(typical: float) -> int:
    """How many jobs a child running tasks of ``typical`` seconds may hold ahead: about
    ``AHEAD_SECONDS`` of work, at least one and at most ``MAX_DEPTH``."""
    return max(1, min(MAX_DEPTH, int(AHEAD_SECONDS / max(typical, 1e-6))))
