"""What runs inside a pool child: decode a job's arguments, run the task, report the outcome.

A child does nothing else. It ignores SIGINT (the main process decides how to shut down), dies
on SIGTERM (that is how ``revoke(terminate=True)`` reaches it), and turns SIGUSR1 into
``SoftTimeLimitExceeded`` inside the running task.
"""

from __future__ import annotations

import ctypes
import os
import signal
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

from celeriac.exceptions import CeleriacError, SoftTimeLimitExceeded
from celeriac.execution import Outcome, execute, failure
from celeriac.message import decode_arguments
from celeriac.serialization import Serializer
from celeriac.task import Task
from celeriac.worker.mailbox import Mailbox
from celeriac.worker.pool import UNDECODABLE, Job

SOFT_LIMIT_SIGNAL = signal.SIGUSR1
RETIRING = -1  # sent as the next key with a child's last outcome: it exits, send it nothing
_PR_SET_PDEATHSIG = 1
_running: list[str] = []  # the task id being run, for the soft-limit handler


def _soft_limit(signum: int, frame: FrameType | None) -> None:
    if _running:
        raise SoftTimeLimitExceeded(f"task {_running[0]} reached its soft time limit")


def run_job(tasks: dict[str, Task[Any, Any]], serializer: Serializer, job: Job) -> Outcome:
    """Decode the job's arguments and run it; a body that does not decode is UNDECODABLE."""
    try:
        args, kwargs = decode_arguments(serializer, job.content_type, job.body)
    except CeleriacError as exc:
        return failure(exc, state=UNDECODABLE)
    request = job.request
    request.args, request.kwargs = args, kwargs
    _running[:] = [job.request.id or ""]
    try:
        return execute(tasks[job.task], request, args, kwargs, serializer)
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


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the worker's main process dies.

    Otherwise a child would finish its task as an orphan while the message, whose lease nobody
    renews any more, is handed to another worker: the same task would run twice at once.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends an idle child
        pass


def child_main(
    conn: Connection,
    tasks: dict[str, Task[Any, Any]],
    serializer: Serializer,
    max_tasks: int | None,
    max_memory_kib: int | None,
    parent_pid: int,
    mailbox: Mailbox,
) -> None:
    """Serve jobs until told to stop or a recycling limit is reached.

    Jobs come down ``conn``, or from ``mailbox`` when the main process left the next one there
    while this child was busy. Each outcome goes back as ``(key, outcome, next_key)``:
    ``next_key`` is the key of the mailbox job taken right after, so the main process knows
    exactly which job this child runs now, or ``RETIRING`` when the child is about to exit
    (a recycling limit), so that no job is sent to it in the meantime.
    """
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(SOFT_LIMIT_SIGNAL, _soft_limit)
    done = 0
    job: Job | None = None
    while True:
        if job is None:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                return
            if job is None:
                return
        outcome = run_job(tasks, serializer, job)
        done += 1
        last = bool(max_tasks and done >= max_tasks) or bool(
            max_memory_kib and resident_kib() > max_memory_kib
        )
        following = None if last else mailbox.take()
        next_key = RETIRING if last else None if following is None else following.key
        try:
            conn.send((job.key, outcome, next_key))
        except (BrokenPipeError, OSError):
            return
        if last:
            return
        job = following
