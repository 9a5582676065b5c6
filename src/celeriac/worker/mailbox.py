"""A one-job mailbox in shared memory between the main process and one pool child.

While a child runs a short task, the main process may leave the next job in its mailbox. The
child takes it the moment its task ends, before it even reports the outcome, so it never waits
for the main process between short tasks. Unlike a job sent down the pipe, a job in the mailbox
can be taken back at any time until the child takes it: when the task ahead turns out slow, or
another child comes free, the main process retracts it and runs it elsewhere. So the mailbox
keeps children busy without the starvation that prefetching into a busy process brings.
"""

from __future__ import annotations

import pickle
from multiprocessing.context import BaseContext
from typing import Any

CAPACITY = 64 * 1024  # bytes; a bigger job is never offered, only sent to an idle child


class Mailbox:
    """Room for one pickled job, guarded by a lock shared with the child."""

    def __init__(self, ctx: BaseContext) -> None:
        self._lock = ctx.Lock()
        self._size = ctx.RawValue("i", 0)  # 0: empty
        self._data = ctx.RawArray("c", CAPACITY)

    def offer(self, job: Any) -> bool:
        """Leave ``job`` for the child; False if it is too big (the mailbox must be empty)."""
        data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > CAPACITY:
            return False
        with self._lock:
            self._data[: len(data)] = data
            self._size.value = len(data)
        return True

    def retract(self) -> bool:
        """Take the job back; False if the child has taken it already."""
        with self._lock:
            if not self._size.value:
                return False
            self._size.value = 0
            return True

    def take(self) -> Any | None:
        """The job left here, if any (called by the child)."""
        with self._lock:
            size = self._size.value
            if not size:
                return None
            data = bytes(self._data[:size])
            self._size.value = 0
        return pickle.loads(data)
