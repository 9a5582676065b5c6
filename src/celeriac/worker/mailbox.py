"""A short queue of next jobs in shared memory between the main process and one pool child.

While a child runs short tasks, the main process leaves its next jobs here (up to ``MAX_DEPTH``,
as many as the pool judges worth holding for that child). The child takes the oldest the moment
its task ends, before it even reports the outcome, so it never waits for the main process
between short tasks. Unlike a job sent down the pipe, a job here can be taken back until the
child takes it: when the task ahead turns out slow, or another child comes free, the main
process retracts the newest ones and runs them elsewhere. So the mailbox keeps children busy
without the starvation that prefetching into a busy process brings.

The jobs are stored as the child will read them: the pickled wire tuple of ``Job.wire``, one
after another in one buffer that starts over whenever it is empty.
"""

from __future__ import annotations

import pickle
from multiprocessing.context import BaseContext
from typing import Any

CAPACITY = 64 * 1024  # bytes; a job that does not fit is never offered, only sent to an idle child
MAX_DEPTH = 8  # jobs a mailbox can hold at once


class Mailbox:
    """Up to ``MAX_DEPTH`` pickled jobs, oldest first, guarded by a lock shared with the child.

    ``_head`` is the next slot the child takes, ``_tail`` the next free slot; slot ``i`` holds
    the bytes ``_starts[i]`` to ``_starts[i + 1]`` of the buffer.
    """

    def __init__(self, ctx: BaseContext) -> None:
        self._lock = ctx.Lock()
        self._head = ctx.RawValue("i", 0)
        self._tail = ctx.RawValue("i", 0)
        self._starts = ctx.RawArray("i", MAX_DEPTH + 1)
        self._data = ctx.RawArray("c", CAPACITY)

    def offer(self, job: Any) -> bool:
        """Leave ``job`` after the others; False when it does not fit (full, or too big)."""
        data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            tail = self._tail.value
            start = self._starts[tail]
            end = start + len(data)
            if tail >= MAX_DEPTH or end > CAPACITY:
                return False
            # Through a byte view: one copy. A slice of the ctypes array itself is assigned a
            # byte at a time (9.6 us for a 280-byte job, against 0.5).
            memoryview(self._data).cast("B")[start:end] = data
            self._starts[tail + 1] = end
            self._tail.value = tail + 1
        return True

    def retract(self, most: int = MAX_DEPTH) -> int:
        """Take back up to ``most`` of the newest jobs not taken yet; return how many."""
        with self._lock:
            head, tail = int(self._head.value), int(self._tail.value)
            count = min(most, tail - head)
            self._tail.value = tail - count
            if head == tail - count:
                self._head.value = self._tail.value = 0
        return count

    def take(self) -> Any | None:
        """The oldest job left here, if any (called by the child)."""
        with self._lock:
            head, tail = self._head.value, self._tail.value
            if head == tail:
                return None
            data = bytes(self._data[self._starts[head] : self._starts[head + 1]])
            if head + 1 == tail:  # empty now: the next offer starts at the buffer's beginning
                self._head.value = self._tail.value = 0
            else:
                self._head.value = head + 1
        return pickle.loads(data)
