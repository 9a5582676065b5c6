"""What a worker holds between fetching a message and settling it.

Fetched messages are admitted (``Intake``) and wait here for a process; ``dispatch`` starts
them in idle processes and offers the next ones to processes running short tasks; finished jobs
become ``Settlement``s for the ``Recorder``. While tasks are short, one message per process is
kept ready (``ready_ahead``), and handed back unstarted if it waits too long
(``give_back_stale``), so no worker sits on work another could start.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from celeriac import states
from celeriac.app import Celeriac
from celeriac.backends.base import ResultRecord
from celeriac.brokers.base import Delivery
from celeriac.exceptions import TaskRevokedError
from celeriac.execution import Outcome, failure
from celeriac.message import Message
from celeriac.worker.commands import CommandReader
from celeriac.worker.intake import Intake, Refusal
from celeriac.worker.leases import LeaseKeeper
from celeriac.worker.pool import ExecutionPool, Finished, Job, job_for
from celeriac.worker.recorder import (
    ACK,
    ALREADY_ACKED,
    DEAD_LETTER,
    GIVE_BACK,
    REQUEUE,
    Settlement,
    settlement_for,
)

READY_AHEAD_UNDER = 0.05  # seconds: tasks typically shorter keep one message ready per process
HOLD_LIMIT = 1.0  # seconds a message kept ready may wait for a process before it goes back
READY_AHEAD_PAUSE = 5.0  # seconds without a message kept ready after one went back


@dataclass(frozen=True)
class _Policy:
    acks_late: bool
    track_started: bool
    soft_time_limit: float | None
    time_limit: float | None


@dataclass
class _InFlight:
    delivery: Delivery
    message: Message
    early_acked: bool = False
    since: float = field(default_factory=time.monotonic)


class Dispatcher:
    """The messages a worker holds: waiting for a process, or in the pool."""

    def __init__(
        self,
        app: Celeriac,
        pool: ExecutionPool,
        *,
        keeper: LeaseKeeper,
        intake: Intake,
        commands: CommandReader,
        hostname: str,
        extra_prefetch: int,
        concurrency: int,
    ) -> None:
        self.app = app
        self.pool = pool
        self.keeper = keeper
        self.intake = intake
        self.commands = commands
        self.hostname = hostname
        self.extra_prefetch = extra_prefetch
        self.concurrency = concurrency
        self.waiting: deque[_InFlight] = deque()
        self.inflight: dict[int, _InFlight] = {}
        self._keys = itertools.count(1)
        self._policies: dict[str, _Policy] = {}
        self._typical: float | None = None  # moving average of task run times, in seconds
        self._ready_ahead_from = 0.0

    def busy(self) -> bool:
        """True while a message waits here or a job is in the pool."""
        return bool(self.waiting or self.inflight)

    def wanted(self) -> int:
        """How many more messages the pool could use: free processes, plus the messages
        kept ready, less those already waiting or offered."""
        held = self.extra_prefetch + self.ready_ahead()
        return self.pool.free_slots() + held - len(self.waiting) - self.pool.offered()

    def admit(self, deliveries: Sequence[Delivery]) -> list[Settlement]:
        refused = []
        for delivery in deliveries:
            checked = self.intake.check(delivery, revoked=self.commands)
            if isinstance(checked, Refusal):
                action = DEAD_LETTER if checked.dead_letter else ACK
                refused.append(Settlement(delivery, checked.message, checked.outcome, action))
            else:
                self.waiting.append(_InFlight(delivery, checked))
        return refused

    def dispatch(self) -> list[Settlement]:
        """Start waiting messages in idle processes, and offer the next ones to processes
        running short tasks (``ExecutionPool.offer``); return those revoked while waiting."""
        revoked = []
        self._reclaim_offers_for_idle()
        while self.waiting:
            entry = self.waiting[0]
            if entry.message.id in self.commands:
                self.waiting.popleft()
                outcome = failure(TaskRevokedError("revoked"), state=states.REVOKED)
                revoked.append(Settlement(entry.delivery, entry.message, outcome, ACK))
                continue
            policy = self._policy(entry.message.task)
            if self.pool.free_slots() > 0:
                self.waiting.popleft()
                self._start(entry, policy)
            elif not (policy.acks_late and not policy.track_started):
                break  # acknowledged or marked STARTED when it starts: never offered ahead
            else:
                job = self._job(entry, policy)
                if not self.pool.offer(job):
                    break
                self.waiting.popleft()
                self.inflight[job.key] = entry
        return revoked

    def _start(self, entry: _InFlight, policy: _Policy) -> None:
        if not policy.acks_late:
            self.app.broker.ack(entry.delivery)
            self.keeper.release([entry.delivery])
            entry.early_acked = True
        if policy.track_started:
            self._store_started(entry.message)
        job = self._job(entry, policy)
        self.inflight[job.key] = entry
        self.pool.submit(job)

    def _job(self, entry: _InFlight, policy: _Policy) -> Job:
        message = entry.message
        return job_for(
            next(self._keys),
            message,
            entry.delivery,
            self.hostname,
            soft_time_limit=_first(message.soft_time_limit, policy.soft_time_limit),
            time_limit=_first(message.time_limit, policy.time_limit),
        )

    def _reclaim_offers_for_idle(self) -> None:
        """An idle process with nothing to start takes back what was offered elsewhere."""
        if self.pool.free_slots() > len(self.waiting) and self.pool.offered():
            for item in self.pool.retract_offers():
                self.waiting.appendleft(self.inflight.pop(item.job.key))

    def finished(self, finished: list[Finished], *, stopping: bool) -> list[Settlement]:
        """Settlements of the jobs that ended; offered jobs taken back wait to run again
        (unless the worker is ``stopping``: then they are given back)."""
        settlements = []
        for item in finished:
            if item.returned and not stopping:
                self.waiting.appendleft(self.inflight.pop(item.job.key))
            else:
                settlements.append(self.settlement(item))
        return settlements

    def _policy(self, name: str) -> _Policy:
        """How a task runs here: its options, else the app's settings (looked up once)."""
        policy = self._policies.get(name)
        if policy is None:
            task, conf = self.app.tasks[name], self.app.conf
            policy = self._policies[name] = _Policy(
                acks_late=_first(task.acks_late, conf.task_acks_late),
                track_started=_first(task.track_started, conf.task_track_started),
                soft_time_limit=_first(task.soft_time_limit, conf.seconds("task_soft_time_limit")),
                time_limit=_first(task.time_limit, conf.seconds("task_time_limit")),
            )
        return policy

    def _store_started(self, message: Message) -> None:
        record = ResultRecord(
            message.id,
            states.STARTED,
            meta={"task": message.task, "worker": self.hostname, "pid": os.getpid()},
        )
        self.app.backend.store(record, expires=self.app.conf.seconds("result_expires"))

    def settlement(self, finished: Finished) -> Settlement:
        entry = self.inflight.pop(finished.job.key)
        if finished.returned:  # taken back unstarted while stopping: give it back
            nothing = Outcome(states.PENDING, b"null", "application/json")
            return Settlement(entry.delivery, entry.message, nothing, GIVE_BACK, record=False)
        if not finished.lost:
            runtime = finished.outcome.runtime
            previous = self._typical
            self._typical = runtime if previous is None else 0.9 * previous + 0.1 * runtime
        settlement = settlement_for(
            entry.delivery,
            entry.message,
            finished.outcome,
            lost=finished.lost,
            killed_by=finished.killed_by,
            max_deliveries=self.intake.max_deliveries,
        )
        if entry.early_acked:
            settlement = Settlement(
                entry.delivery,
                entry.message,
                finished.outcome,
                ALREADY_ACKED,
                record=settlement.record and settlement.action != REQUEUE,
            )
        return settlement

    def ready_ahead(self) -> int:
        """A message per process kept ready for when it comes free, while tasks are short.

        It saves a trip to the broker between a task and the next (for short tasks, most of
        their cost). Long tasks keep nothing ahead, and a message that waited here
        ``HOLD_LIMIT`` seconds goes back to the queue (``_give_back_stale``), so no worker
        sits on work that another could start.
        """
        short = self._typical is not None and self._typical < READY_AHEAD_UNDER
        return self.concurrency if short and time.monotonic() >= self._ready_ahead_from else 0

    def give_back_stale(self, now: float) -> list[Settlement]:
        """Hand back held messages that waited too long for a free process."""
        if self.pool.free_slots() > 0:
            return []
        stale = []
        while (
            len(self.waiting) > self.extra_prefetch and now - self.waiting[-1].since >= HOLD_LIMIT
        ):
            stale.append(self.waiting.pop())
        if not stale:
            return []
        self._ready_ahead_from = now + READY_AHEAD_PAUSE
        nothing = Outcome(states.PENDING, b"null", "application/json")
        return [Settlement(e.delivery, e.message, nothing, GIVE_BACK, record=False) for e in stale]

    def give_back_waiting(self) -> list[Settlement]:
        nothing = Outcome(states.PENDING, b"null", "application/json")
        given = [
            Settlement(entry.delivery, entry.message, nothing, GIVE_BACK, record=False)
            for entry in self.waiting
        ]
        self.waiting.clear()
        return given


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
