"""``Dispatcher``: every message a worker holds between its fetch and its settlement.

Fetched messages are checked (``Intake``) and wait here for a process; ``dispatch`` starts them
in idle processes and offers the next ones to processes running short tasks; jobs that end are
concluded (``Held.finished``) and wait in ``finished`` for the next broker batch. While tasks
are short, one message per process is kept ready (``ready_ahead``), and handed back unstarted
if it waits too long (``give_back_stale``), so no worker sits on work another could start.
A message of a rate-limited task without a token waits aside in the ``Throttle``.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.brokers.base import Delivery
from celeriac.exceptions import TaskRevokedError
from celeriac.execution import Action, failure
from celeriac.middleware import MiddlewareStack
from celeriac.queues import declared_queues
from celeriac.rates import Rate, TokenBucket
from celeriac.worker.held import Held
from celeriac.worker.intake import Intake
from celeriac.worker.pool import Ending, ExecutionPool, Finished, Job, job_for
from celeriac.worker.throttle import HOLD, Throttle

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.worker.worker import Worker

READY_AHEAD_UNDER = 0.05  # seconds: tasks typically shorter keep one message ready per process
# A message kept ready goes back to the queue once it waited HOLD_RUNTIMES typical run times for
# a process (so a slow task ahead of it does not hold it long), within these bounds in seconds.
HOLD_RUNTIMES = 50
HOLD_FLOOR, HOLD_LIMIT = 0.25, 1.0
READY_AHEAD_PAUSE = 5.0  # seconds without a message kept ready after one went back


@dataclass(frozen=True)
class _Policy:
    task: str
    acks_late: bool
    track_started: bool
    soft_time_limit: float | None
    time_limit: float | None
    bucket: TokenBucket | None  # its rate limit here (None: none)


def _first(value: Any, fallback: Any) -> Any:
    """``value``, unless it is None (then ``fallback``): a task's option over the default."""
    return fallback if value is None else value


class Dispatcher:
    """The messages a worker holds: waiting for a process, in the pool, or finished."""

    def __init__(
        self,
        worker: Worker,
        pool: ExecutionPool,
        intake: Intake,
        revoked: Container[str],
        *,
        extra_prefetch: int,
        throttle: Throttle,
    ) -> None:
        self.worker = worker
        self.app: Celeriac = worker.app
        self.middleware: MiddlewareStack = worker.app.middleware
        self.pool = pool
        self.intake = intake
        self.revoked = revoked
        self.extra_prefetch = extra_prefetch
        self.throttle = throttle
        self.growth = 0  # slots the pool may still grow by (--autoscale): fetched for too
        self.waiting: deque[Held] = deque()
        self.running: dict[int, Held] = {}
        self.finished: list[Held] = []  # concluded, for the next broker batch
        self._keys = itertools.count(1)
        self._policies: dict[str, _Policy] = {}
        # self.request.delivery_info names the exchange and routing key a queue is declared with
        self._bindings = {
            q.name: (q.exchange.name, q.routing_key)
            for q in declared_queues(worker.app.conf.task_queues)
        }
        self._typical: float | None = None  # moving average of task run times, in seconds
        self._ready_ahead_from = 0.0

    def busy(self) -> bool:
        """True while a message waits here, runs in the pool, or waits to be settled."""
        return bool(self.waiting or self.running or self.finished or self.throttle.count)

    def wanted(self) -> int:
        """How many more messages the pool could use: free processes, plus the messages
        kept ready, less those already waiting or offered."""
        held = self.extra_prefetch + self.ready_ahead() + self.growth
        # Messages waiting for a rate limit's tokens do not hold up the others', up to HOLD.
        throttled = max(0, self.throttle.count - HOLD)
        return self.pool.free_slots() + held - len(self.waiting) - self.pool.offered() - throttled

    def take_finished(self) -> list[Held]:
        """The concluded messages, handed over for recording and settling."""
        taken, self.finished = self.finished, []
        return taken

    # -- in -------------------------------------------------------------------------------------
    def admit(self, deliveries: Sequence[Delivery]) -> None:
        """Check fetched messages: those that may run wait; the others are concluded."""
        for delivery in deliveries:
            held = Held(delivery)
            if self.intake.check(held, self.revoked):
                self.waiting.append(held)
                self.middleware.after_fetch(self.worker, held)
            else:
                self._concluded(held)

    def _concluded(self, held: Held) -> None:
        if held.outcome is not None and held.outcome.state == states.REVOKED:
            self.middleware.after_skip(self.worker, held)
        self.finished.append(held)

    # -- to the pool ------------------------------------------------------------------------------
    def dispatch(self) -> None:
        """Start waiting messages in idle processes, and offer the next ones to processes
        running short tasks (``ExecutionPool.offer``); conclude those revoked while waiting."""
        self._reclaim_offers_for_idle()
        if self.throttle.count:
            self._release_throttled()
        while self.waiting:
            held = self.waiting[0]
            if held.task_id in self.revoked:
                self.waiting.popleft()
                revoked = failure(TaskRevokedError("revoked"), state=states.REVOKED)
                held.refused(revoked, Action.ACK)
                self._concluded(held)
                continue
            policy = self._policy(held)
            bucket = policy.bucket
            if bucket is not None and self.throttle.must_wait(policy.task, bucket):
                self.throttle.hold(policy.task, self.waiting.popleft())
                continue
            if self.pool.free_slots() > 0:
                self.waiting.popleft()
                if bucket is not None:
                    bucket.take()
                self._start(held, policy)
            elif (
                bucket is not None
                or not (policy.acks_late and not policy.track_started)
                or not self.pool.can_offer()
            ):
                break  # acknowledged, marked STARTED, rate-limited (never offered), or no room
            else:
                job = self._job(held, policy)
                if not self.pool.offer(job):
                    break
                self.waiting.popleft()
                held.started(job.key)
                self.running[job.key] = held

    def _release_throttled(self) -> None:
        """Start the rate-limited messages whose token came, in free processes."""
        for held in self.throttle.release(self.pool.free_slots()):
            if held.task_id in self.revoked:
                revoked = failure(TaskRevokedError("revoked"), state=states.REVOKED)
                held.refused(revoked, Action.ACK)
                self._concluded(held)
            else:
                self._start(held, self._policy(held))

    def throttle_wait(self) -> float | None:
        """Seconds until a rate-limited message may start (None: none waits, or no process
        is free, and a process coming free wakes the loop anyway)."""
        if not self.throttle.count or self.pool.free_slots() < 1:
            return None
        return self.throttle.wait_time()

    def set_rate_limit(self, task: str, rate: Rate) -> None:
        """Change the rate limit of ``task`` here (``app.control.rate_limit``).

        Raises:
            ConfigurationError: not a rate.
        """
        self.throttle.set_rate(task, rate)
        self._policies.pop(task, None)

    def _start(self, held: Held, policy: _Policy) -> None:
        if not policy.acks_late:
            self.app.broker.ack(held.delivery)
            self.worker.keeper.release([held.delivery])
            held.early_acked = True
        if policy.track_started:
            self._store_started(held)
        job = self._job(held, policy)
        held.started(job.key)
        self.running[job.key] = held
        self.pool.submit(job)

    def _job(self, held: Held, policy: _Policy) -> Job:
        message = held.message
        assert message is not None
        return job_for(
            next(self._keys),
            message,
            held.delivery,
            soft_time_limit=_first(message.soft_time_limit, policy.soft_time_limit),
            time_limit=_first(message.time_limit, policy.time_limit),
            binding=self._bindings.get(held.delivery.queue),
        )

    def _policy(self, held: Held) -> _Policy:
        """How a task runs here: its options, else the app's settings (looked up once)."""
        assert held.message is not None
        name = held.message.task
        policy = self._policies.get(name)
        if policy is None:
            task, conf, worker = self.app.tasks[name], self.app.conf, self.worker
            policy = self._policies[name] = _Policy(
                task=name,
                acks_late=_first(task.acks_late, conf.task_acks_late),
                track_started=_first(task.track_started, conf.task_track_started),
                soft_time_limit=_first(task.soft_time_limit, worker.soft_time_limit),
                time_limit=_first(task.time_limit, worker.time_limit),
                bucket=self.throttle.bucket(name),
            )
        return policy

    def _store_started(self, held: Held) -> None:
        assert held.message is not None
        meta = {"task": held.message.task, "worker": self.worker.hostname, "pid": os.getpid()}
        record = ResultRecord(held.message.id, states.STARTED, meta=meta)
        self.app.backend.store(record, expires=self.app.conf.seconds("result_expires"))

    def _reclaim_offers_for_idle(self) -> None:
        """An idle process with nothing to start takes back what was offered elsewhere (as
        many as the idle processes can start, newest first)."""
        idle = self.pool.free_slots() - len(self.waiting)
        if idle > 0 and self.pool.offered():
            self.collect(self.pool.retract_offers(idle))

    def terminate(self, task_id: str, signum: int) -> bool:
        """Kill the process running ``task_id`` (``revoke(terminate=True)``); True if it runs
        here."""
        if not self.pool.can_terminate:
            return False
        for held in self.running.values():
            if held.task_id == task_id:
                held.signum = signum
        return self.pool.terminate(task_id, signum)

    # -- from the pool ----------------------------------------------------------------------------
    def collect(self, finished: Sequence[Finished], *, stopping: bool = False) -> None:
        """Conclude the jobs that ended; offered jobs taken back wait to run again (unless the
        worker is ``stopping``: then they are given back)."""
        for done in finished:
            held = self.running.pop(done.job.key)
            if done.ending is Ending.RETURNED:
                if stopping:
                    held.give_back()
                    self.finished.append(held)
                else:
                    held.returned()
                    self.waiting.appendleft(held)
                continue
            if done.ending is Ending.RAN:
                runtime, previous = done.outcome.runtime, self._typical
                self._typical = runtime if previous is None else 0.9 * previous + 0.1 * runtime
            held.finished(done, self.intake.max_deliveries)
            self.finished.append(held)

    # -- holding back -----------------------------------------------------------------------------
    def ready_ahead(self) -> int:
        """A message per process kept ready for when it comes free, while tasks are short,
        and as many as the busy processes could be offered (``ExecutionPool.ahead_capacity``).

        It saves a trip to the broker between a task and the next (for short tasks, most of
        their cost). Long tasks keep nothing ahead, and a message that waited here longer than
        :meth:`hold_limit` goes back to the queue (``give_back_stale``), so no worker sits on
        work that another could start.
        """
        short = self._typical is not None and self._typical < READY_AHEAD_UNDER
        ready = short and time.monotonic() >= self._ready_ahead_from
        return self.pool.size() + self.pool.ahead_capacity() if ready else 0

    def hold_limit(self) -> float:
        """Seconds a message kept ready may wait for a process: ``HOLD_RUNTIMES`` typical run
        times, at least ``HOLD_FLOOR`` (a loop's wake-ups are 0.2 s apart) and at most
        ``HOLD_LIMIT``. Tasks of a millisecond give a message back after a quarter second."""
        typical = self._typical
        if typical is None:
            return HOLD_LIMIT
        return min(HOLD_LIMIT, max(HOLD_FLOOR, HOLD_RUNTIMES * typical))

    def give_back_stale(self, now: float) -> None:
        """Hand back held messages that waited too long for a free process."""
        if self.pool.free_slots() > 0:
            return
        stale = 0
        limit = self.hold_limit()
        while len(self.waiting) > self.extra_prefetch and now - self.waiting[-1].since >= limit:
            held = self.waiting.pop()
            held.give_back()
            self.finished.append(held)
            stale += 1
        if stale:
            self._ready_ahead_from = now + READY_AHEAD_PAUSE

    def give_back_waiting(self) -> None:
        """Hand back every message that waits for a process or a token (the worker is
        stopping)."""
        self.waiting.extend(self.throttle.take_all())
        while self.waiting:
            held = self.waiting.popleft()
            held.give_back()
            self.finished.append(held)
