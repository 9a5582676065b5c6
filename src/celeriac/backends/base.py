"""The result backend contract: where task states, results and tracebacks live.

A record in a final state (SUCCESS, FAILURE, REVOKED) is never overwritten by a later ``store``:
the first final outcome wins. That is what keeps a worker that lost its lease (it froze, and
another worker ran the task meanwhile) from replacing the result that was already recorded.

One conformance suite (``tests/backends/``) runs the same assertions against every backend.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from celeriac import states
from celeriac.serialization import JSON

Clock = Callable[[], float]


@dataclass(frozen=True)
class ResultRecord:
    """The stored state of one task.

    ``payload`` holds the serialized return value for SUCCESS, and the JSON description of the
    exception (see ``serialization.exception_to_dict``) for FAILURE, RETRY and REVOKED.
    ``meta`` holds small extras (the task name, the worker, child task ids).
    """

    task_id: str
    state: str
    payload: bytes = b"null"
    content_type: str = JSON
    date_done: float | None = None
    retries: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """True when the state is final."""
        return self.state in states.READY_STATES


class ResultBackend(abc.ABC):
    """Stores one :class:`ResultRecord` per task id, with an expiry.

    Implementations are safe to use from several threads and processes. ``url`` is the address
    with any password masked, fit for logs.
    """

    url: str = ""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock

    @abc.abstractmethod
    def store_many(self, records: Sequence[ResultRecord], *, expires: float | None) -> list[bool]:
        """Store records that expire ``expires`` seconds from now (never when None).

        A record whose task already has a final state is not stored; its flag is False.

        Raises:
            BackendError: the backend cannot be reached.
        """

    def store(self, record: ResultRecord, *, expires: float | None = None) -> bool:
        """Store one record; False when the task already had a final state.

        Raises:
            BackendError: the backend cannot be reached.
        """
        return self.store_many([record], expires=expires)[0]

    @abc.abstractmethod
    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """The records that exist among ``task_ids`` (missing ones are simply absent)."""

    def get(self, task_id: str) -> ResultRecord | None:
        """The record of one task, or None when nothing was stored (state PENDING)."""
        return self.get_many([task_id]).get(task_id)

    @abc.abstractmethod
    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        """Block until the task's state is final, or ``timeout`` seconds pass.

        Returns the latest record either way (None when nothing was stored). Implementations
        are woken by the store where it can notify, rather than sleeping in a loop.
        """

    @abc.abstractmethod
    def forget(self, task_ids: Sequence[str]) -> None:
        """Delete the records of these tasks."""

    # -- workflow state: chords and DAG runs are built from these two primitives -------------
    @abc.abstractmethod
    def add_to_set(self, key: str, member: str, *, expires: float | None) -> int:
        """Add ``member`` to the set ``key`` and return the set's size, in one atomic step.

        Adding a member twice changes nothing, so a chord member that runs twice is counted
        once. The set expires ``expires`` seconds after its latest change.

        Raises:
            BackendError: the backend cannot be reached.
        """

    @abc.abstractmethod
    def set_members(self, key: str) -> set[str]:
        """The members of the set ``key`` (empty when it does not exist)."""

    @abc.abstractmethod
    def put_document(self, key: str, document: dict[str, Any], *, expires: float | None) -> None:
        """Store a JSON-ready dict under ``key`` (replacing any), expiring after ``expires``.

        Raises:
            BackendError: the backend cannot be reached.
        """

    @abc.abstractmethod
    def get_document(self, key: str) -> dict[str, Any] | None:
        """The dict stored under ``key``, or None."""

    @abc.abstractmethod
    def cleanup(self) -> int:
        """Delete expired records; return how many were deleted."""

    def close(self) -> None:
        """Release connections; the backend may be used again and reconnects."""
