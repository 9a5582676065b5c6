"""Pools that run tasks inside the worker's own process: ``threads`` and ``solo``.

For I/O-bound tasks that release the GIL (``threads``), or for debugging (``solo``: one task at a
time, in the main thread, as Celery's solo pool). Neither can kill a running task, so
``terminate`` and hard time limits need ``prefork``; leases are still renewed, by their own
thread, so a long task is never handed to a second worker.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
from multiprocessing.connection import wait
from typing import Any

from celeriac.worker.pool import Ending, ExecutionPool, Finished, Job, lost
from celeriac.worker.runner import TaskRunner


class ThreadPool(ExecutionPool):
    """``concurrency`` threads, each running one job at a time."""

    def __init__(self, runner: TaskRunner, concurrency: int) -> None:
        self.runner = runner
        self.concurrency = concurrency
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self._running: dict[int, Job] = {}
        self._threads: list[threading.Thread] = []
        self._numbers = itertools.count()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)

    def start(self) -> None:
        """Start the threads."""
        self._add(self.concurrency)

    def _add(self, n: int) -> None:
        for _ in range(n):
            number = next(self._numbers)
            thread = threading.Thread(
                target=self._serve, name=f"celeriac-task-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def size(self) -> int:
        """Threads serving jobs."""
        return self.concurrency

    def pool_grow(self, n: int = 1) -> None:
        """Start ``n`` more threads."""
        self.concurrency += n
        self._add(n)

    def pool_shrink(self, n: int = 1) -> int:
        """End up to ``n`` idle threads; see :meth:`ExecutionPool.pool_shrink`."""
        gone = max(0, min(n, self.free_slots()))
        for _ in range(gone):
            self._jobs.put(None)  # an idle thread takes it and ends; jobs go to the others
        self.concurrency -= gone
        self._threads = [t for t in self._threads if t.is_alive()]
        return gone

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._done.put(Finished(job, self.runner.run(job)))
            os.write(self._wake_write, b"x")

    def free_slots(self) -> int:
        """Threads without a job."""
        return self.concurrency - len(self._running)

    def submit(self, job: Job) -> None:
        """Queue a job for the next free thread."""
        self._running[job.key] = job
        self._jobs.put(job)

    def running(self) -> list[Job]:
        """Jobs in flight."""
        return list(self._running.values())

    def poll(self, timeout: float, wake_fds: list[Any]) -> list[Finished]:
        """Collect finished jobs; see :meth:`ExecutionPool.poll`."""
        if self._done.empty():
            wait([self._wake_read, *wake_fds], timeout)
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_read, 4096)
        finished = []
        while not self._done.empty():
            item = self._done.get()
            self._running.pop(item.job.key, None)
            finished.append(item)
        return finished

    def stop(self, timeout: float) -> list[Finished]:
        """Wait up to ``timeout`` for running jobs; threads cannot be killed, so the rest are
        reported lost and left to finish in the background."""
        for _ in range(self.concurrency):
            self._jobs.put(None)
        finished: list[Finished] = []
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        while self._running and not deadline.is_set():
            finished.extend(self.poll(0.05, []))
        timer.cancel()
        for job in self._running.values():
            finished.append(lost(job, "worker shut down", Ending.SHUTDOWN))
        self._running.clear()
        return finished


class SoloPool(ExecutionPool):
    """Runs each job right away in the calling thread (Celery's ``solo``)."""

    def __init__(self, runner: TaskRunner) -> None:
        self.runner = runner
        self._finished: list[Finished] = []

    def start(self) -> None:
        """Nothing to start."""

    def free_slots(self) -> int:
        """Always one: a job runs to its end inside :meth:`submit`."""
        return 1

    def submit(self, job: Job) -> None:
        """Run the job now."""
        self._finished.append(Finished(job, self.runner.run(job)))

    def running(self) -> list[Job]:
        """Nothing is ever left running."""
        return []

    def poll(self, timeout: float, wake_fds: list[Any]) -> list[Finished]:
        """Hand over what ran; wait on ``wake_fds`` when nothing did."""
        if not self._finished:
            wait(wake_fds, timeout)
        finished, self._finished = self._finished, []
        return finished

    def stop(self, timeout: float) -> list[Finished]:
        """Hand over what ran."""
        return self.poll(0, [])
