"""The seam between the worker's main process and whatever runs the tasks.

The main process hands a pool ``Job``s and gets back ``Finished`` events; it never runs user code
itself (except with the ``solo`` pool, which is Celery's "run it right here"). Each pool says
what it can do: only ``prefork`` can kill a running task (``terminate``, hard time limits).
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any

from celeriac import states
from celeriac.brokers.base import Delivery
from celeriac.exceptions import TaskRevokedError, TimeLimitExceeded, WorkerLostError
from celeriac.execution import Outcome, failure
from celeriac.message import Message
from celeriac.task import Request

# What a child reports when the body of a message does not decode (the message is dead-lettered).
UNDECODABLE = "UNDECODABLE"


@dataclass(frozen=True)
class Job:
    """One task call for a pool: everything a child needs, and nothing it must not have."""

    key: int
    task: str
    body: bytes
    content_type: str
    request: Request
    soft_time_limit: float | None = None
    time_limit: float | None = None


def job_for(
    key: int,
    message: Message,
    delivery: Delivery,
    hostname: str,
    *,
    soft_time_limit: float | None,
    time_limit: float | None,
) -> Job:
    """The job that runs ``message``: the body stays serialized for the child to decode."""
    request = Request(
        id=message.id,
        task=message.task,
        retries=message.retries,
        eta=message.eta,
        expires=message.expires,
        hostname=hostname,
        delivery_info={
            "queue": delivery.queue,
            "priority": message.priority,
            "attempt": delivery.attempt,
        },
        headers=message.headers,
        parent_id=message.parent_id,
        root_id=message.root_id,
        group_id=message.group_id,
        workflow=message.workflow,
        called_directly=False,
        time_limit=message.time_limit,
        soft_time_limit=message.soft_time_limit,
    )
    return Job(
        key=key,
        task=message.task,
        body=message.body,
        content_type=message.content_type,
        request=request,
        soft_time_limit=soft_time_limit,
        time_limit=time_limit,
    )


@dataclass(frozen=True)
class Finished:
    """A job that will not run any further here, and how it ended.

    ``lost`` marks a job whose process died (or was killed on purpose, ``killed_by``): the
    message has no outcome of its own and the main process decides what becomes of it.
    ``returned`` marks a job taken back before it started (see ``ExecutionPool.offer``).
    """

    job: Job
    outcome: Outcome
    lost: bool = False
    killed_by: str | None = None  # "time_limit", "terminate" or "shutdown"
    returned: bool = False


@dataclass
class Running:
    """Book-keeping of a job in flight, for time limits and terminate."""

    job: Job
    started: float = field(default_factory=time.monotonic)
    soft_sent: bool = False
    kill_reason: str | None = None
    kill_sent_at: float | None = None


def lost_outcome(reason: str) -> Outcome:
    """The outcome recorded for a job whose process died."""
    return failure(WorkerLostError(reason))


def returned(job: Job) -> Finished:
    """A job taken back before it started."""
    return Finished(job, lost_outcome("not started"), returned=True)


def time_limit_outcome(job: Job) -> Outcome:
    """The outcome recorded for a job killed at its hard time limit."""
    return failure(TimeLimitExceeded(f"{job.task} ran past its time limit ({job.time_limit}s)"))


def revoked_outcome() -> Outcome:
    """The outcome recorded for a job terminated by ``revoke(terminate=True)``."""
    return failure(TaskRevokedError("terminated"), state=states.REVOKED)


class ExecutionPool(abc.ABC):
    """Runs jobs; reports them finished. Used by one thread: the worker's main loop."""

    can_terminate: bool = False

    @abc.abstractmethod
    def start(self) -> None:
        """Start the processes or threads that run jobs."""

    @abc.abstractmethod
    def free_slots(self) -> int:
        """How many more jobs can start right now."""

    def offer(self, job: Job) -> bool:
        """Leave ``job`` with a busy process to start as soon as its short task ends; False
        when none can take it. An offered job comes back ``returned`` if it is taken back."""
        return False

    def retract_offers(self) -> list[Finished]:
        """Take back every offered job that has not started (they come back ``returned``)."""
        return []

    def offered(self) -> int:
        """How many offered jobs have not started yet."""
        return 0

    @abc.abstractmethod
    def submit(self, job: Job) -> None:
        """Start a job; only call when :meth:`free_slots` is positive."""

    @abc.abstractmethod
    def poll(self, timeout: float, wake_fds: list[Any]) -> list[Finished]:
        """Wait up to ``timeout`` for jobs to finish or a ``wake_fds`` to be readable.

        Also enforces time limits, and replaces processes that died.
        """

    @abc.abstractmethod
    def running(self) -> list[Job]:
        """The jobs started and not yet finished."""

    def terminate(self, task_id: str, signum: int) -> bool:
        """Kill the process running ``task_id`` with ``signum``; True if it ran here."""
        return False

    @abc.abstractmethod
    def stop(self, timeout: float) -> list[Finished]:
        """Stop: wait up to ``timeout`` for running jobs, then kill what is left.

        Returns the jobs that finished meanwhile and, marked lost, the ones that were killed.
        """
