"""The seam between the worker's main process and whatever runs the tasks.

The main process hands a pool ``Job``s and gets back ``Finished`` events, each saying how the
job ended (``Ending``); it never runs user code itself (except with the ``solo`` pool, which is
Celery's "run it right here"). Each pool says what it can do: only ``prefork`` can kill a
running task (``terminate``, hard time limits); ``prefork`` and ``threads`` can grow and shrink
(``pool_grow``, ``pool_shrink``: ``--autoscale``).
"""

from __future__ import annotations

import abc
import enum
import time
from dataclasses import dataclass, field, fields
from typing import Any

from celeriac import states
from celeriac.brokers.base import Delivery
from celeriac.exceptions import (
    ConfigurationError,
    TaskRevokedError,
    TimeLimitExceeded,
    WorkerLostError,
)
from celeriac.execution import Action, Outcome, failure
from celeriac.message import Message


@dataclass(frozen=True, slots=True)
class Job:
    """One task call for a pool, and the main process's book-keeping of it.

    ``message`` is the decoded message, which a pool running tasks in this process (threads,
    solo) runs from; a prefork child is sent only :meth:`wire`: the message's bytes as the broker
    stored them, which the child decodes itself, so the main process pickles no objects.
    """

    key: int
    message: Message
    raw: bytes
    queue: str
    attempt: int
    binding: tuple[str, str] | None = None  # the exchange and routing key of its queue
    soft_time_limit: float | None = None
    time_limit: float | None = None

    @property
    def task(self) -> str:
        """The task's name."""
        return self.message.task

    @property
    def task_id(self) -> str:
        """The call's id."""
        return self.message.id

    def wire(self) -> JobWire:
        """What a prefork child needs, as plain values (cheap to pickle)."""
        return (
            self.key,
            self.raw,
            self.queue,
            self.attempt,
            self.binding,
            self.soft_time_limit,
            self.time_limit,
        )


# key, message bytes, queue, attempt, binding, soft time limit, time limit
JobWire = tuple[int, bytes, str, int, tuple[str, str] | None, float | None, float | None]


def job_for(
    key: int,
    message: Message,
    delivery: Delivery,
    *,
    soft_time_limit: float | None,
    time_limit: float | None,
    binding: tuple[str, str] | None = None,
) -> Job:
    """The job that runs ``message``: the body stays serialized for where it runs to decode.
    ``binding`` is the exchange and routing key its queue is declared with (``task_queues``)."""
    return Job(
        key,
        message,
        delivery.body,
        delivery.queue,
        delivery.attempt,
        binding,
        soft_time_limit,
        time_limit,
    )


# An outcome on its way back from a prefork child: the common case (a run that asks only for
# its message to be acked, with nothing sent meanwhile) as the four values it comes to; any
# other outcome whole.
OutcomeWire = tuple[str, bytes, str, float] | Outcome


def outcome_wire(outcome: Outcome) -> OutcomeWire:
    """``outcome`` as a prefork child sends it back."""
    if (
        outcome.action is Action.ACK
        and outcome.record
        and outcome.retry is None
        and not outcome.children
        and outcome.replacement is None
    ):
        return outcome.state, outcome.payload, outcome.content_type, outcome.runtime
    return outcome


# A plain outcome's other fields: Outcome's defaults, read from the dataclass.
_WIRED = ("state", "payload", "content_type", "runtime")
_PLAIN = {f.name: f.default for f in fields(Outcome) if f.name not in _WIRED}


def outcome_from_wire(wire: OutcomeWire) -> Outcome:
    """The outcome a prefork child sent back."""
    if isinstance(wire, Outcome):
        return wire
    state, payload, content_type, runtime = wire
    # Filled in one go rather than by the frozen dataclass's __init__, a field at a time through
    # object.__setattr__ (1.8 -> 0.6 us, once a task in the main process).
    outcome: Outcome = object.__new__(Outcome)
    fields = outcome.__dict__
    fields.update(_PLAIN)
    fields["state"], fields["payload"] = state, payload
    fields["content_type"], fields["runtime"] = content_type, runtime
    return outcome


class Ending(enum.Enum):
    """How a job left the pool."""

    RAN = "ran"  # it ran to its end; the outcome is the task's
    DIED = "died"  # its process died on its own (SIGKILL, a segfault, the OOM killer)
    TIME_LIMIT = "time_limit"  # killed at its hard time limit
    TERMINATED = "terminated"  # killed by revoke(terminate=True)
    SHUTDOWN = "shutdown"  # killed because the worker stopped before it finished
    RETURNED = "returned"  # taken back before it started (see ExecutionPool.offer)


@dataclass(frozen=True)
class Finished:
    """A job that will not run any further here, how it ended, and its outcome (for a job
    that did not run to its end: the failure to record if it is recorded)."""

    job: Job
    outcome: Outcome
    ending: Ending = Ending.RAN


@dataclass
class Running:
    """Book-keeping of a job in flight, for time limits and terminate."""

    job: Job
    started: float = field(default_factory=time.monotonic)
    soft_sent: bool = False
    kill_reason: Ending | None = None
    kill_sent_at: float | None = None

    def next_deadline(self, now: float, grace: float) -> float:
        """Seconds from ``now`` (monotonic) to its next limit: its soft time limit (until
        sent), its hard one, or the end of the ``grace`` after a kill was sent; an hour when
        it has none."""
        job, soonest = self.job, 3600.0
        for limit in (job.soft_time_limit if not self.soft_sent else None, job.time_limit):
            if limit is not None:
                soonest = min(soonest, self.started + limit - now)
        if self.kill_sent_at is not None:
            soonest = min(soonest, self.kill_sent_at + grace - now)
        return soonest


def lost(job: Job, reason: str, ending: Ending = Ending.DIED) -> Finished:
    """A job whose process died (or was killed at shutdown) before it reported."""
    return Finished(job, failure(WorkerLostError(reason)), ending)


# A job taken back before it started has no outcome to record: one shared placeholder, so no
# exception and traceback are built for each of the many offers taken back.
_NOT_STARTED = failure(WorkerLostError("not started"))


def returned(job: Job) -> Finished:
    """A job taken back before it started."""
    return Finished(job, _NOT_STARTED, Ending.RETURNED)


def killed(job: Job, reason: Ending) -> Finished:
    """A job killed on purpose: at its hard time limit, or by ``terminate``."""
    if reason is Ending.TIME_LIMIT:
        error = TimeLimitExceeded(f"{job.task} ran past its time limit ({job.time_limit}s)")
        return Finished(job, failure(error), reason)
    return Finished(job, failure(TaskRevokedError("terminated"), state=states.REVOKED), reason)


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
        when none can take it. An offered job comes back ``RETURNED`` if it is taken back."""
        return False

    def can_offer(self) -> bool:
        """True when a busy process could be offered a job now."""
        return False

    def retract_offers(self, most: int | None = None) -> list[Finished]:
        """Take back offered jobs that have not started (they come back ``RETURNED``): all of
        them, or up to ``most``, newest first, from the processes offered the most."""
        return []

    def offered(self) -> int:
        """How many offered jobs have not started yet."""
        return 0

    def ahead_capacity(self) -> int:
        """How many jobs its busy processes could be offered, as things run now."""
        return 0

    def size(self) -> int:
        """How many jobs it can run at once."""
        return 1

    def pool_grow(self, n: int = 1) -> None:
        """Add ``n`` processes or threads.

        Raises:
            ConfigurationError: this pool cannot change its size.
        """
        raise ConfigurationError(f"the {type(self).__name__} cannot grow: use prefork or threads")

    def pool_shrink(self, n: int = 1) -> int:
        """Remove up to ``n`` idle processes or threads (a busy one is never stopped); returns
        how many went.

        Raises:
            ConfigurationError: this pool cannot change its size.
        """
        raise ConfigurationError(f"the {type(self).__name__} cannot shrink: use prefork or threads")

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

        Returns the jobs that finished meanwhile and, ending ``SHUTDOWN``, the ones that were
        killed.
        """
