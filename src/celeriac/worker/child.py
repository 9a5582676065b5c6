"""What runs inside a pool child: decode a job's arguments, run the task, report the outcome.

A child does nothing else. It ignores SIGINT (the main process decides how to shut down), dies
on SIGTERM (that is how ``revoke(terminate=True)`` reaches it), and turns SIGUSR1 into
``SoftTimeLimitExceeded`` inside the running task.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
from multiprocessing.connection import Connection
from types import FrameType

from celeriac import signals
from celeriac.exceptions import SoftTimeLimitExceeded
from celeriac.execution import Outcome
from celeriac.request import current_request
from celeriac.worker.frames import write_frame
from celeriac.worker.mailbox import Mailbox
from celeriac.worker.pool import JobWire, outcome_wire
from celeriac.worker.runner import TaskRunner

SOFT_LIMIT_SIGNAL = signal.SIGUSR1
RETIRING = -1  # sent as the next key with a child's last outcome: it exits, send it nothing
_PR_SET_PDEATHSIG = 1
_running: list[bool] = []  # not empty while a task runs, for the soft-limit handler
PICKLE = pickle.HIGHEST_PROTOCOL


def _soft_limit(signum: int, frame: FrameType | None) -> None:
    if _running:
        request = current_request()
        task_id = request.id if request is not None else "?"
        raise SoftTimeLimitExceeded(f"task {task_id} reached its soft time limit")


def run_job(runner: TaskRunner, job: JobWire) -> Outcome:
    """Run the job, with the soft time limit's signal handler knowing that a task runs."""
    _running[:] = [True]
    try:
        return runner.run_wire(job)
    finally:
        _running.clear()


def resident_kib() -> int:
    """This process's resident memory in KiB (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the worker's main process dies.

    Otherwise a child would finish its task as an orphan while the message, whose lease nobody
    renews any more, is handed to another worker: the same task would run twice at once.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends an idle child
        pass


def _become_child(parent_pid: int) -> bool:
    """Die with the parent and take the child's signal handling; False if the parent died
    already. A child ignores SIGINT (the main process decides how to shut down), dies on
    SIGTERM (``revoke(terminate=True)``) and turns SIGUSR1 into ``SoftTimeLimitExceeded``."""
    die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        return False
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(SOFT_LIMIT_SIGNAL, _soft_limit)
    return True


def child_main(
    jobs: Connection,
    outcomes: int,
    runner: TaskRunner,
    max_tasks: int | None,
    max_memory_kib: int | None,
    parent_pid: int,
    mailbox: Mailbox,
) -> None:
    """Serve jobs until told to stop or a recycling limit is reached.

    Jobs (``JobWire``, pickled) come down ``jobs``, or from ``mailbox`` when the main process
    left the next ones there while this child was busy. Each outcome goes back, pickled, in a
    frame (``frames.py``) on the pipe ``outcomes``, as ``(key, next_key, outcome_wire(outcome))``:
    ``next_key`` is the key of the mailbox job taken right after, so the main process knows
    exactly which job this child runs now, or ``RETIRING`` when the child is about to exit
    (a recycling limit), so that no job is sent to it in the meantime. As it exits it sends
    Celery's ``worker_process_shutdown`` (``pid``, ``exitcode``).
    """
    if not _become_child(parent_pid):
        return
    runner.middleware.child_start()
    exitcode = 1
    try:
        _serve(jobs, outcomes, runner, max_tasks, max_memory_kib, mailbox)
        exitcode = 0
    finally:
        if signals.worker_process_shutdown.has_receivers():
            signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=exitcode)


def _serve(
    jobs: Connection,
    outcomes: int,
    runner: TaskRunner,
    max_tasks: int | None,
    max_memory_kib: int | None,
    mailbox: Mailbox,
) -> None:
    done = 0
    job: JobWire | None = None
    while True:
        if job is None:
            try:
                job = pickle.loads(jobs.recv_bytes())
            except (EOFError, OSError):
                return
            if job is None:
                return
        outcome = run_job(runner, job)
        done += 1
        last = bool(max_tasks and done >= max_tasks) or bool(
            max_memory_kib and resident_kib() > max_memory_kib
        )
        following = None if last else mailbox.take()
        next_key = RETIRING if last else None if following is None else following[0]
        try:
            write_frame(outcomes, pickle.dumps((job[0], next_key, outcome_wire(outcome)), PICKLE))
        except (BrokenPipeError, OSError):
            return
        if last:
            return
        job = following
