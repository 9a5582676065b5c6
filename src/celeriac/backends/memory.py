"""A result backend that lives in one process, for tests and the pytest plugin."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from celeriac.backends.base import Clock, ResultBackend, ResultRecord


class MemoryBackend(ResultBackend):
    """Results in a dict; ``wait`` is woken by ``store`` through a condition variable."""

    def __init__(self, name: str = "", *, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        self.url = f"memory://{name}"
        self._cond = threading.Condition()
        self._records: dict[str, tuple[ResultRecord, float | None]] = {}

    def store_many(self, records: Sequence[ResultRecord], *, expires: float | None) -> list[bool]:
        """Store records; see :meth:`ResultBackend.store_many`."""
        expires_at = None if expires is None else self.clock() + expires
        with self._cond:
            flags = []
            for record in records:
                current = self._live(record.task_id)
                stored = current is None or not current.ready
                if stored:
                    self._records[record.task_id] = (record, expires_at)
                flags.append(stored)
            self._cond.notify_all()
            return flags

    def _live(self, task_id: str) -> ResultRecord | None:
        entry = self._records.get(task_id)
        if entry is None:
            return None
        record, expires_at = entry
        if expires_at is not None and expires_at <= self.clock():
            del self._records[task_id]
            return None
        return record

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """Fetch records; see :meth:`ResultBackend.get_many`."""
        with self._cond:
            found = {tid: self._live(tid) for tid in task_ids}
            return {tid: rec for tid, rec in found.items() if rec is not None}

    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        """Wait for a final state; see :meth:`ResultBackend.wait`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                record = self._live(task_id)
                if record is not None and record.ready:
                    return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return record
                self._cond.wait(remaining)

    def forget(self, task_ids: Sequence[str]) -> None:
        """Delete records; see :meth:`ResultBackend.forget`."""
        with self._cond:
            for task_id in task_ids:
                self._records.pop(task_id, None)

    def cleanup(self) -> int:
        """Delete expired records; see :meth:`ResultBackend.cleanup`."""
        now = self.clock()
        with self._cond:
            doomed = [t for t, (_, exp) in self._records.items() if exp is not None and exp <= now]
            for task_id in doomed:
                del self._records[task_id]
            return len(doomed)


_named: dict[str, MemoryBackend] = {}
_named_lock = threading.Lock()


def named_backend(name: str) -> MemoryBackend:
    """The process-wide memory backend called ``name`` (created on first use)."""
    with _named_lock:
        if name not in _named:
            _named[name] = MemoryBackend(name)
        return _named[name]
