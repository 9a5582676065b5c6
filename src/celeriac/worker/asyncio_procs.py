"""The asyncio pool's record of one child (``_Process``), and how slots are spread over the
children when the pool grows or shrinks (``spread_growth``, ``spread_shrink``).

A child runs up to its own ``slots`` jobs at once: ``-c`` at the start, changed by
``pool_grow`` / ``pool_shrink`` (``app.control.pool_grow``, ``--autoscale``). A child that is
*retiring* (``--max-tasks-per-child`` reached, or its memory past ``--max-memory-per-child``)
gets no more jobs; a child in its place was started already, and it is told to stop once every
job it was sent has ended or come back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from celeriac.coroutines import is_coroutine_task
from celeriac.worker.asyncio_child import SLOTS, write_frames
from celeriac.worker.child import PICKLE
from celeriac.worker.frames import FrameReader
from celeriac.worker.pool import Running

if TYPE_CHECKING:
    from celeriac.task import Task

log = logging.getLogger("celeriac.worker")


@dataclass
class AsyncioProcess:
    """One child of the asyncio pool, as the main process sees it."""

    process: BaseProcess
    jobs_fd: int  # frames go down
    outcomes: FrameReader  # outcome frames come back
    slots: int  # jobs it runs at once
    running: dict[int, Running] = field(default_factory=dict)  # job key -> its book-keeping
    waiting: dict[int, Running] = field(default_factory=dict)  # in the child, for a slot
    given: int = 0  # jobs sent to it, less those it handed back unstarted
    stopping: bool = False  # told to stop, or being killed: it gets no more jobs
    retiring: bool = False  # replaced already: it gets no more jobs, and stops once idle
    taking_back: bool = False  # asked for its waiting jobs back, not answered yet
    outbox: list[object] = field(default_factory=list)  # messages for the next flush

    @property
    def serving(self) -> bool:
        """It may be sent jobs."""
        return not (self.stopping or self.retiring)

    def held(self) -> int:
        """Jobs sent to it and not ended."""
        return len(self.running) + len(self.waiting)

    def load(self) -> float:
        """How busy it is, for the choice of a child to send a job to (lower: freer; one
        that is not serving: never)."""
        if not self.serving:
            return float("inf")
        return len(self.running) + len(self.waiting) - self.slots

    def queue(self, message: object) -> None:
        """Queue ``message`` for the next :meth:`flush` (jobs: see ``AsyncioPool.submit``)."""
        self.outbox.append(message)

    def flush(self) -> bool:
        """Write the queued messages down the pipe, as one frame; False when the child is gone
        (its exit is seen through its sentinel)."""
        messages, self.outbox = self.outbox, []
        if not messages:
            return True
        try:
            write_frames(self.jobs_fd, [pickle.dumps(messages, PICKLE)])
        except OSError:
            return False
        return True

    def send(self, message: object) -> bool:
        """Write ``message`` down the pipe now, behind the queued frames; False when the child
        is gone."""
        self.queue(message)
        return self.flush()

    def kill(self) -> None:
        """SIGKILL the child (its exit is seen through its sentinel)."""
        if self.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)

    def close(self) -> None:
        """Close both pipes."""
        with contextlib.suppress(OSError):
            os.close(self.jobs_fd)
        self.outcomes.close()


def spread_growth(sizes: list[int], n: int) -> list[int]:
    """``sizes`` (slots per child) with ``n`` slots more, each to the child with the fewest."""
    grown = list(sizes)
    for _ in range(n if grown else 0):
        smallest = grown.index(min(grown))
        grown[smallest] += 1
    return grown


def spread_shrink(sizes: list[int], idle: list[int], n: int) -> list[int]:
    """``sizes`` with up to ``n`` slots fewer, taken only from ``idle`` ones (per child), from
    the child with the most slots first: a slot in use is never taken away."""
    shrunk, free = list(sizes), list(idle)
    for _ in range(n):
        candidates = [i for i, spare in enumerate(free) if spare > 0]
        if not candidates:
            break
        largest = max(candidates, key=lambda i: shrunk[i])
        shrunk[largest] -= 1
        free[largest] -= 1
    return shrunk


def resize(procs: list[AsyncioProcess], sizes: list[int]) -> None:
    """Give each of ``procs`` its slots in ``sizes``, telling the children that change."""
    for proc, slots in zip(procs, sizes, strict=True):
        if slots != proc.slots:
            proc.slots = slots
            proc.send((SLOTS, slots))


def next_deadline(procs: list[AsyncioProcess], grace: float) -> float:
    """Seconds until the soonest time limit of a running job, or the end of the ``grace``
    of a job cancelled (at most an hour, at least 0)."""
    now, soonest = time.monotonic(), 3600.0
    for proc in procs:
        for run in proc.running.values():
            soonest = min(soonest, run.next_deadline(now, grace))
    return max(soonest, 0.0)


def warn_soft_limit_ignored(task: Task[Any, Any] | None) -> None:
    """Log that ``task``, if a plain function, gets no soft time limit on the asyncio pool:
    it runs in a thread, where raising it is not safe (``docs/design/asyncio.md``)."""
    if task is None or is_coroutine_task(task.fn):
        return
    log.warning(
        "%s is a plain function with a soft time limit: on the asyncio pool it runs in a "
        "thread, where the soft limit cannot be raised (only its hard limit is enforced, by "
        "replacing the process). Make it an async def, or run it on -P prefork",
        task.name,
    )
