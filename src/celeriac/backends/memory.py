"""A result backend that lives in one process, for tests and the pytest plugin."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Sequence
from typing import Any

from celeriac.backends.base import Clock, ResultBackend, ResultRecord
from celeriac.backends.memory_history import MemoryHistory


class MemoryBackend(ResultBackend):
    """Results in a dict; ``wait`` is woken by ``store`` through a condition variable."""

    def __init__(self, name: str = "", *, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        self.url = f"memory://{name}"
        self._cond = threading.Condition()
        self._records: dict[str, tuple[ResultRecord, float | None]] = {}
        self._sets: dict[str, tuple[set[str], float | None]] = {}
        self._documents: dict[str, tuple[dict[str, Any], float | None]] = {}
        self.history = MemoryHistory(lambda: self.clock())

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

    def _expiry(self, expires: float | None) -> float | None:
        return None if expires is None else self.clock() + expires

    def _alive(self, expires_at: float | None) -> bool:
        return expires_at is None or expires_at > self.clock()

    def add_to_set(self, key: str, member: str, *, expires: float | None) -> int:
        """Add to a set; see :meth:`ResultBackend.add_to_set`."""
        with self._cond:
            members, expires_at = self._sets.get(key, (set(), None))
            if not self._alive(expires_at):
                members = set()
            members.add(member)
            self._sets[key] = (members, self._expiry(expires))
            return len(members)

    def set_members(self, key: str) -> set[str]:
        """Members of a set; see :meth:`ResultBackend.set_members`."""
        with self._cond:
            members, expires_at = self._sets.get(key, (set(), None))
            return set(members) if self._alive(expires_at) else set()

    def put_document(self, key: str, document: dict[str, Any], *, expires: float | None) -> None:
        """Store a document; see :meth:`ResultBackend.put_document`."""
        with self._cond:
            self._documents[key] = (copy.deepcopy(document), self._expiry(expires))

    def get_document(self, key: str) -> dict[str, Any] | None:
        """Read a document; see :meth:`ResultBackend.get_document`."""
        with self._cond:
            document, expires_at = self._documents.get(key, (None, None))
            if document is None or not self._alive(expires_at):
                return None
            return copy.deepcopy(document)

    def cleanup(self) -> int:
        """Delete expired records; see :meth:`ResultBackend.cleanup`."""
        now = self.clock()
        with self._cond:
            removed = 0
            stores: tuple[dict[str, Any], ...] = (self._records, self._sets, self._documents)
            for store in stores:
                doomed = [k for k, (_, exp) in store.items() if exp is not None and exp <= now]
                for key in doomed:
                    del store[key]
                removed += len(doomed)
            return removed


_named: dict[str, MemoryBackend] = {}
_named_lock = threading.Lock()


def named_backend(name: str) -> MemoryBackend:
    """The process-wide memory backend called ``name`` (created on first use)."""
    with _named_lock:
        if name not in _named:
            _named[name] = MemoryBackend(name)
        return _named[name]
