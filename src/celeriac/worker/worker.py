"""``Worker``: one main process that fetches, supervises its pool, and records outcomes.

The main loop waits on the pool and on a wake-up pipe; each turn it collects finished jobs, takes
what the consumer thread fetched, checks it and starts what may run (``Dispatcher``), and
records what finished (``Recorder``) in one broker batch that also fetches what the pool can take
next. Two threads help: the consumer (waiting for messages when the queue is empty) and the
lease keeper. User code runs only in the pool.

Shutdown: SIGTERM stops fetching, gives back what has not started, lets running tasks finish
for ``worker_shutdown_timeout`` seconds and gives back the rest. A second SIGTERM, or SIGINT or
SIGQUIT, gives everything back at once.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from types import FrameType

from celeriac.app import Celeriac
from celeriac.brokers.base import Delivery
from celeriac.exceptions import BrokerError, ConfigurationError
from celeriac.worker.commands import CommandReader
from celeriac.worker.consumer import Consumer
from celeriac.worker.dispatch import Dispatcher
from celeriac.worker.followups import Followups
from celeriac.worker.intake import Intake
from celeriac.worker.leases import LeaseKeeper
from celeriac.worker.options import POOLS, WorkerOptions, format_hostname
from celeriac.worker.pool import ExecutionPool
from celeriac.worker.prefork import PreforkPool
from celeriac.worker.recorder import (
    Recorder,
    Settlement,
)
from celeriac.worker.threads import SoloPool, ThreadPool
from celeriac.worker.wakeup import WakePipe

log = logging.getLogger("celeriac.worker")
COMMAND_INTERVAL = 0.2  # seconds between reads of the control log while idle
HOUSEKEEPING_INTERVAL = 300.0
MIN_RETRY_DELAY, MAX_RETRY_DELAY = 0.1, 2.0  # seconds between tries to record outcomes
SHUTDOWN_RECORD_WAIT = 10.0  # seconds a stopping worker keeps trying to record outcomes
WARM, COLD = 1, 2


class Worker:
    """A worker for ``app``; ``run()`` serves until a signal or ``stop()``."""

    def __init__(self, app: Celeriac, options: WorkerOptions | None = None) -> None:
        options = options or WorkerOptions()
        if options.pool not in POOLS:
            raise ConfigurationError(f"unknown pool {options.pool!r}: choose from {POOLS}")
        app.check()
        conf = app.conf
        self.app = app
        self.options = options
        self.hostname = format_hostname(options.hostname)
        self.queues = list(options.queues) or [conf.task_default_queue]
        if conf.worker_direct:  # Celery's: a queue of this node's own, to send to it by name
            self.queues.append(f"{self.hostname}.dq")
        self.concurrency = int(
            options.concurrency or conf.worker_concurrency or os.cpu_count() or 1
        )
        self.lease = conf.lease_seconds()
        self.pool = self._make_pool()
        prefetch = int(options.prefetch_multiplier or conf.worker_prefetch_multiplier or 1)
        # Messages held beyond free slots: (multiplier - 1) per process, as Celery's prefetch.
        self.extra_prefetch = 0 if options.pool == "solo" else (prefetch - 1) * self.concurrency
        self.keeper = LeaseKeeper(app.broker, self.lease)
        self.consumer = Consumer(
            app.broker,
            self.queues,
            lease=self.lease,
            name=self.hostname,
            keeper=self.keeper,
        )
        self.commands = CommandReader(app.broker)
        self.intake = Intake(
            app.tasks,
            app.serializer,
            max_bytes=int(conf.message_max_bytes),
            max_deliveries=int(conf.task_max_deliveries),
            clock=app.broker.clock,
        )
        self.recorder = Recorder(
            app.broker,
            app.backend,
            app.serializer,
            self.keeper,
            hostname=self.hostname,
            expires=conf.seconds("result_expires"),
            followups=Followups(app),
        )
        self.dispatcher = Dispatcher(
            app,
            self.pool,
            keeper=self.keeper,
            intake=self.intake,
            commands=self.commands,
            hostname=self.hostname,
            extra_prefetch=self.extra_prefetch,
            concurrency=self.concurrency,
        )
        self._stopping = 0
        self._wakeup = WakePipe()  # written by signal handlers and stop()
        self._last_commands = 0.0
        self._last_housekeeping = time.monotonic()
        self._drain_started = False
        self._carried: list[Settlement] = []  # refusals found while refilling: next turn
        self._starved = True  # the last fetch came back short: the consumer thread waits
        self._unrecorded: list[Settlement] = []  # outcomes the store could not take yet
        self._retry_at = 0.0
        self._retry_delay = MIN_RETRY_DELAY

    def _make_pool(self) -> ExecutionPool:
        conf, opts = self.app.conf, self.options
        if opts.pool == "threads":
            return ThreadPool(self.app.tasks, self.app.serializer, self.concurrency)
        if opts.pool == "solo":
            return SoloPool(self.app.tasks, self.app.serializer)
        return PreforkPool(
            self.app.tasks,
            self.app.serializer,
            self.concurrency,
            max_tasks_per_child=opts.max_tasks_per_child or conf.worker_max_tasks_per_child,
            max_memory_per_child=opts.max_memory_per_child or conf.worker_max_memory_per_child,
        )

    # -- running --------------------------------------------------------------------------------
    def run(self) -> None:
        """Serve until stopped; returns after a clean shutdown."""
        if self.options.install_signal_handlers:
            self._install_signal_handlers()
        self.app.finalize()  # built-in tasks and on_after_configure, before the pool forks
        self.pool.start()
        self.keeper.start()
        self.commands.refresh()
        self.app.broker.recover()
        self.consumer.want(self._wanted())
        self.consumer.start()
        log.info(
            "%s ready: %s pool, concurrency %d, queues %s, broker %s, lease %.1fs",
            self.hostname,
            self.options.pool,
            self.concurrency,
            ",".join(self.queues),
            self.app.broker.url,
            self.lease,
        )
        try:
            while not self._stopping:
                self._turn()
        finally:
            self._shutdown()

    def drain(self) -> int:
        """Run every message that is ready now, in this thread, then return (burst mode).

        For tests and one-off jobs: no consumer or lease threads, no signal handlers; returns
        how many messages were settled. Pair with the ``solo`` or ``threads`` pool.
        """
        if not self._drain_started:
            self.pool.start()
            self._drain_started = True
        self.commands.refresh()
        settled = 0
        while True:
            deliveries: list[Delivery] = []
            free = self.pool.free_slots()
            if free > 0:
                deliveries = self.app.broker.fetch(
                    self.queues, free, lease=self.lease, consumer=self.hostname, timeout=0
                )
                self.keeper.hold(deliveries, time.monotonic())
            settlements = self.dispatcher.admit(deliveries)
            settlements.extend(self.dispatcher.dispatch())
            finished = self.pool.poll(
                0.05 if self.dispatcher.inflight and not deliveries else 0, []
            )
            settlements.extend(self.dispatcher.finished(finished, stopping=bool(self._stopping)))
            self.recorder.settle(settlements)
            settled += len(settlements)
            if not deliveries and not self.dispatcher.busy():
                return settled

    def close(self) -> None:
        """Release what a worker that was only drained holds (its pool and pipes).

        ``run()`` does this itself when it returns.
        """
        if self._drain_started:
            self._drain_started = False
            self.pool.stop(0)
        self.consumer.close()
        self._wakeup.close()

    def stop(self, cold: bool = False) -> None:
        """Ask the main loop to shut down (warm: finish running tasks; cold: give them back)."""
        self._stopping = max(self._stopping, COLD if cold else WARM)
        self._wakeup.wake()

    def _install_signal_handlers(self) -> None:
        def on_term(signum: int, frame: FrameType | None) -> None:
            self.stop(cold=self._stopping >= WARM)

        def on_int(signum: int, frame: FrameType | None) -> None:
            self.stop(cold=True)

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_int)
        signal.signal(signal.SIGQUIT, on_int)

    def _turn(self, timeout: float = COMMAND_INTERVAL) -> None:
        if self._carried:
            timeout = 0.0
        elif self._unrecorded:
            timeout = min(timeout, max(0.0, self._retry_at - time.monotonic()))
        finished = self.pool.poll(timeout, [self.consumer.wakeup, self._wakeup])
        now = time.monotonic()
        settlements = self._carried + self.dispatcher.finished(
            finished, stopping=bool(self._stopping)
        )
        self._carried = []
        if self._unrecorded and now >= self._retry_at:
            settlements = self._unrecorded + settlements
            self._unrecorded = []
        deliveries = self.consumer.take()
        if deliveries or now - self._last_commands >= COMMAND_INTERVAL:
            self._read_commands(now)
        settlements.extend(self.dispatcher.admit(deliveries))
        settlements.extend(self.dispatcher.dispatch())
        # Outcomes that came in meanwhile: start their successors before the broker round trip.
        settlements += self.dispatcher.finished(self.pool.poll(0, []), stopping=False)
        settlements.extend(self.dispatcher.dispatch())
        settlements.extend(self.dispatcher.give_back_stale(now))
        if settlements:
            self._take_in(self._settle(settlements, refill=True))
        elif not self._starved and self._wanted() > 0:
            self._take_in(self._refill_alone())
        # The consumer thread fetches only once the queue ran dry for this loop's own fetches:
        # it then waits for new messages without holding up this loop.
        self.consumer.want(self._wanted() if self._starved else 0)
        if now - self._last_housekeeping >= HOUSEKEEPING_INTERVAL:
            self._housekeeping(now)

    def _take_in(self, fresh: list[Delivery]) -> None:
        self._carried = self.dispatcher.admit(fresh)  # refusals among them are settled next turn
        self._carried += self.dispatcher.dispatch()

    def _refill(self) -> list[Delivery]:
        """Fetch what the pool can take, without waiting; note whether the queue ran dry.

        Raises:
            BrokerError: the broker cannot be reached.
        """
        asked = self._wanted()
        fresh = self.consumer.fetch_now(asked)
        self._starved = len(fresh) < asked
        return fresh

    def _refill_alone(self) -> list[Delivery]:
        try:
            return self._refill()
        except BrokerError as exc:
            log.error("cannot fetch messages: %s", exc)
            self._starved = True  # the consumer thread retries with backoff
            return []

    def _wanted(self) -> int:
        """How many more messages to fetch: what the pool could use, less what is on its way,
        and none while outcomes wait to be recorded (no new work that could not be either)."""
        if self._unrecorded or self._stopping:
            return 0
        return max(0, self.dispatcher.wanted() - self.consumer.in_transit())

    def _read_commands(self, now: float) -> None:
        self._last_commands = now
        for termination in self.commands.refresh():
            if self.pool.can_terminate and self.pool.terminate(
                termination.task_id, termination.signum
            ):
                log.info("terminating task %s (signal %d)", termination.task_id, termination.signum)

    def _housekeeping(self, now: float) -> None:
        self._last_housekeeping = now
        try:
            self.app.backend.cleanup()
            self.app.broker.recover()
        except Exception as exc:
            log.warning("housekeeping failed: %s", exc)

    # -- messages in -------------------------------------------------------------------------------
    # -- outcomes out ----------------------------------------------------------------------------
    def _settle(self, settlements: list[Settlement], *, refill: bool = False) -> list[Delivery]:
        """Record outcomes and settle messages; with ``refill``, lease as many new messages
        in the same broker batch (one SQLite transaction does both).

        When the broker or backend cannot be reached, the settlements are kept and tried again
        with backoff, and their slots stay taken, so the worker takes no new work it could not
        record; their leases are still renewed meanwhile.
        """
        if not settlements:
            return []
        fresh: list[Delivery] = []
        try:
            with self.app.broker.batch():
                self.recorder.settle(settlements)
                if refill:
                    fresh = self._refill()
        except Exception as exc:  # any store error: kept and retried, nothing is lost
            self.keeper.release(fresh)
            self._unrecorded.extend(settlements)
            log.error(
                "could not record %d outcomes (retrying in %.1fs): %s",
                len(settlements),
                self._retry_delay,
                exc,
            )
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, MAX_RETRY_DELAY)
            return []
        self._retry_delay = MIN_RETRY_DELAY
        return fresh

    # -- shutdown ----------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        cold = self._stopping >= COLD
        log.info("%s shutting down (%s)", self.hostname, "cold" if cold else "warm")
        self.consumer.stop()
        settlements = self.dispatcher.admit(self.consumer.take())
        settlements.extend(self.dispatcher.give_back_waiting())
        if not cold:
            settlements.extend(self._finish_running())
        finished = self.pool.stop(0)
        settlements.extend(self.dispatcher.settlement(f) for f in finished)
        self._settle(self._carried + self._unrecorded + settlements)
        self._record_what_is_left(deadline=time.monotonic() + SHUTDOWN_RECORD_WAIT)
        self.keeper.stop()
        self.close()
        log.info("%s stopped", self.hostname)

    def _record_what_is_left(self, deadline: float) -> None:
        """Keep trying to record outcomes the store refused, until ``deadline``."""
        while self._unrecorded and time.monotonic() < deadline:
            time.sleep(max(0.0, min(self._retry_at, deadline) - time.monotonic()))
            pending, self._unrecorded = self._unrecorded, []
            self._settle(pending)
        if self._unrecorded:
            log.error(
                "%d outcomes could not be recorded; their messages will run again",
                len(self._unrecorded),
            )

    def _finish_running(self) -> list[Settlement]:
        grace = float(self.options.shutdown_timeout or self.app.conf.worker_shutdown_timeout)
        deadline = time.monotonic() + grace
        settlements: list[Settlement] = []
        while self.pool.running() and self._stopping < COLD and time.monotonic() < deadline:
            finished = self.pool.poll(min(0.2, deadline - time.monotonic()), [self._wakeup])
            settlements.extend(self.dispatcher.settlement(f) for f in finished)
            self._wakeup.clear()
        return settlements


def run_worker(app: Celeriac, options: WorkerOptions | None = None) -> None:
    """Run a worker for ``app`` in this process until it is told to stop.

    Raises:
        ConfigurationError: a bad setting or option.
    """
    Worker(app, options).run()
