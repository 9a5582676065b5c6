"""``Worker``: one main process that fetches, supervises its pool, and records outcomes.

A turn of the main loop: wait on the pool and the wake-up pipes (``poll``), hand what finished
to the ``Dispatcher`` (which owns every held message), take in what the consumer thread fetched
and start what may run, then one broker batch (``Recorder.record``) that records what finished
and fetches what the pool can take next. ``drain()`` runs the same turn. Two threads help: the
consumer (waiting for messages when the queue is empty) and the lease keeper. User code runs
only in the pool.

Set-up sends Celery's ``celeryd_init`` (first: receivers may still change settings) and
``worker_init`` (last). With ``--autoscale`` each turn also sizes the pool (``Autoscaler``).

Start-up: before its pool starts, the worker reads the control log and releases run-out leases;
while the broker cannot be reached, it tries again with backoff (0.1 s doubling to 2 s, one log
line a try), and a signal meanwhile ends it at once.

Shutdown: SIGTERM stops fetching, gives back what has not started, lets running tasks finish
for ``worker_shutdown_timeout`` seconds and gives back the rest. A second SIGTERM, or SIGINT or
SIGQUIT, gives everything back at once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import select
import signal
import time
from types import FrameType

from celeriac import signals
from celeriac.app import Celeriac
from celeriac.brokers.base import Delivery
from celeriac.exceptions import BrokerError, ConfigurationError
from celeriac.queues import queue_names
from celeriac.worker.answers import Answers
from celeriac.worker.asyncio_pool import ASYNCIO_CONCURRENCY, AsyncioPool
from celeriac.worker.autoscale import autoscaler_for
from celeriac.worker.commands import CommandReader
from celeriac.worker.consumer import Consumer
from celeriac.worker.dispatch import Dispatcher
from celeriac.worker.heartbeat import Heartbeat
from celeriac.worker.intake import Intake
from celeriac.worker.leases import LeaseKeeper
from celeriac.worker.options import POOLS, WorkerOptions, format_hostname
from celeriac.worker.pool import ExecutionPool
from celeriac.worker.prefork import PreforkPool
from celeriac.worker.recorder import Recorder
from celeriac.worker.runner import TaskRunner
from celeriac.worker.threads import SoloPool, ThreadPool
from celeriac.worker.throttle import throttle_for
from celeriac.worker.wakeup import WakePipe

log = logging.getLogger("celeriac.worker")
COMMAND_INTERVAL = 0.2  # seconds between reads of the control log while idle
HOUSEKEEPING_INTERVAL = 300.0
SHUTDOWN_RECORD_WAIT = 10.0  # seconds a stopping worker keeps trying to record outcomes
FIRST_START_RETRY, MAX_START_RETRY = 0.1, 2.0  # seconds between tries to reach the broker
WARM, COLD = 1, 2


class Worker:
    """A worker for ``app``; ``run()`` serves until a signal or ``stop()``.

    Raises:
        ConfigurationError: an unknown pool, or a bad setting.
    """

    def __init__(self, app: Celeriac, options: WorkerOptions | None = None) -> None:
        self.options = options = options or WorkerOptions()
        if options.pool not in POOLS:
            raise ConfigurationError(f"unknown pool {options.pool!r}: choose from {POOLS}")
        app.check()
        self.app, conf = app, app.conf
        self.hostname = format_hostname(options.hostname)
        # Celery's first signal: receivers may still change the settings for this node.
        options_dict = dataclasses.asdict(options)
        signals.celeryd_init.send(
            sender=self.hostname, instance=self, conf=conf, options=options_dict
        )
        self.queues = self._queues()
        default = ASYNCIO_CONCURRENCY if options.pool == "asyncio" else os.cpu_count()
        self.concurrency = int(options.concurrency or conf.worker_concurrency or default or 1)
        if options.autoscale is not None:
            self.concurrency = options.autoscale[1]  # it starts at MIN and grows
        self.time_limit = _first(options.time_limit, conf.seconds("task_time_limit"))
        self.soft_time_limit = _first(options.soft_time_limit, conf.seconds("task_soft_time_limit"))
        self.lease = conf.lease_seconds()
        self.keeper = LeaseKeeper(app.broker, self.lease)
        self.consumer = Consumer(
            app.broker, self.queues, lease=self.lease, name=self.hostname, keeper=self.keeper
        )
        self.commands = CommandReader(app.broker, hostname=self.hostname)
        self.pool = self._make_pool()
        self.autoscaler = autoscaler_for(self.pool, options)
        self.dispatcher = Dispatcher(
            self,
            self.pool,
            self._intake(),
            self.commands,
            extra_prefetch=self._extra_prefetch(),
            throttle=throttle_for(app),
        )
        self.dispatcher.growth = self.autoscaler.headroom() if self.autoscaler else 0
        self.recorder = Recorder(self)
        self.heartbeat = Heartbeat(self)  # the backend hears from it every 2 s (issue 11)
        self.answers = Answers(self)  # app.control's commands and inspect()'s questions
        self._stopping = 0
        self._wakeup = WakePipe()  # written by signal handlers and stop()
        self._last_commands = 0.0
        self._last_housekeeping = time.monotonic()
        self._draining = False  # drain(): this thread fetches; no consumer thread runs
        self._starved = True  # the last fetch came back short: the consumer thread waits
        signals.worker_init.send(sender=self)  # as Celery's: set up, before the pool starts

    def _queues(self) -> list[str]:
        conf = self.app.conf  # as Celery's: without -Q, every queue of task_queues
        queues = list(self.options.queues) or queue_names(conf.task_queues)
        queues = [q for q in queues if q not in self.options.exclude_queues]
        queues = queues or [conf.task_default_queue]
        if self.app.conf.worker_direct:  # Celery's: a queue of this node's own, to send to it
            queues.append(f"{self.hostname}.dq")
        return queues

    def _extra_prefetch(self) -> int:
        """Messages held beyond free slots: (multiplier - 1) per process, as Celery's prefetch."""
        if self.options.pool == "solo":
            return 0
        multiplier = self.options.prefetch_multiplier or self.app.conf.worker_prefetch_multiplier
        return (int(multiplier or 1) - 1) * self.concurrency

    def _intake(self) -> Intake:
        conf = self.app.conf
        return Intake(
            self.app.tasks,
            self.app.serializer,
            max_bytes=int(conf.message_max_bytes),
            max_deliveries=int(conf.task_max_deliveries),
            clock=self.app.broker.clock,
        )

    def _make_pool(self) -> ExecutionPool:
        app, opts = self.app, self.options
        runner = TaskRunner(
            app.tasks,
            app.serializer,
            app.middleware,
            hostname=self.hostname,
            max_bytes=int(app.conf.message_max_bytes),
        )
        if opts.processes is not None and opts.pool != "asyncio":
            raise ConfigurationError("--processes is for the asyncio pool (-P asyncio)")
        recycling = {
            "max_tasks_per_child": opts.max_tasks_per_child or app.conf.worker_max_tasks_per_child,
            "max_memory_per_child": (
                opts.max_memory_per_child or app.conf.worker_max_memory_per_child
            ),
        }
        if opts.pool == "asyncio":  # -c coroutines in each of --processes children
            scaled = opts.autoscale is not None  # MAX,MIN slots in all: it starts with MIN
            slots = 0 if scaled else self.concurrency
            pool = AsyncioPool(runner, slots, processes=opts.processes or 1, **recycling)
            if scaled:
                pool.pool_grow(self.concurrency)
            self.concurrency = pool.size()
            return pool
        if opts.pool == "threads":
            return ThreadPool(runner, self.concurrency)
        if opts.pool == "solo":
            return SoloPool(runner)
        return PreforkPool(runner, self.concurrency, **recycling)

    # -- running --------------------------------------------------------------------------------
    def run(self) -> None:
        """Serve until stopped; returns after a clean shutdown."""
        self._wakeup.open()  # before the signal handlers that wake it
        if self.options.install_signal_handlers:
            self._install_signal_handlers()
        self.app.finalize()  # built-in tasks and on_after_configure, before the pool forks
        if not self._reach_broker():
            log.info("%s stopped before the broker could be reached", self.hostname)
            self.close()
            return
        if self.options.purge:
            self._purge()
        if self.recorder.events.enabled:  # task_history; forked before the pool's children
            self.recorder.start_history_process()
        self.pool.start()
        self.keeper.start()
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
        self.app.middleware.worker_start(self)
        self.heartbeat.start()
        try:
            while not self._stopping:
                self._turn(COMMAND_INTERVAL)
        finally:
            self._shutdown()

    def _reach_broker(self) -> bool:
        """Read every kept control command and release run-out leases, trying again with
        backoff while the broker cannot be reached; False when stopped first."""
        delay = FIRST_START_RETRY
        while not self._stopping:
            try:
                self.commands.read()
                self.app.broker.recover()
                return True
            except BrokerError as exc:
                log.error("cannot reach the broker: %s (retrying in %.1fs)", exc, delay)
            # stop() and the signal handlers write to the wake-up pipe: a stop ends the wait.
            select.select([self._wakeup], [], [], delay)
            delay = min(delay * 2, MAX_START_RETRY)
        return False

    def _purge(self) -> None:
        """``--purge``: delete what waits in this worker's queues, as Celery's does."""
        removed = self.app.broker.purge(self.queues)
        log.warning("discarded %d messages from %s (--purge)", removed, ",".join(self.queues))

    def drain(self) -> int:
        """Run every message that is ready now, in this thread, then return (burst mode).

        For tests and one-off jobs: no consumer or lease threads, no signal handlers; returns
        how many messages were settled. Pair with the ``solo`` or ``threads`` pool. A store
        error is raised, not kept.
        """
        if not self._draining:
            self.pool.start()
            self._draining = True
        self.commands.refresh()
        self._apply_commands()
        settled = self.recorder.settled
        while self._turn(self._drain_wait()) or self.dispatcher.busy():
            pass
        self.recorder.write_events()  # the last turn's outcomes
        return self.recorder.settled - settled

    def _drain_wait(self) -> float:
        if self.dispatcher.running:
            return 0.05
        token = self.dispatcher.throttle_wait()  # only rate-limited messages wait: sleep
        return 0.0 if token is None or self.dispatcher.waiting else min(token, 1.0)

    def close(self) -> None:
        """Release what a worker that was only drained holds (its pool and pipes).

        ``run()`` does this itself when it returns.
        """
        if self._draining:
            self._draining = False
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

    # -- one turn -------------------------------------------------------------------------------
    def _turn(self, timeout: float) -> int:
        """Poll, hand what finished to the dispatcher, one broker batch; returns how many
        messages came in."""
        dispatcher = self.dispatcher
        if dispatcher.finished:
            timeout = 0.0
        elif dispatcher.throttle.count and (token := dispatcher.throttle_wait()) is not None:
            timeout = min(timeout, token)  # wake when a rate-limited message may start
        dispatcher.collect(self.pool.poll(self.recorder.wait_time(timeout), self._wake_fds()))
        now = time.monotonic()
        taken = self.consumer.take()
        # Commands are read with what the consumer thread brings (it woke on an empty queue)
        # and every COMMAND_INTERVAL, not after each batch's fetch: that is a round trip a turn.
        read = bool(taken) or now - self._last_commands >= COMMAND_INTERVAL
        if read:
            self._read_commands(now)
        self._take_in(taken)  # which polls the pool first, when something was taken
        if read and not taken:
            # Outcomes that came in while the commands were read (perhaps a round trip): start
            # their successors before the broker round trip. Right after the poll above, a
            # poll finds nothing new and costs a system call and the pool's bookkeeping.
            dispatcher.collect(self.pool.poll(0, self._wake_fds()))
        dispatcher.dispatch()
        if self.autoscaler is not None:
            self._autoscale()
        dispatcher.give_back_stale(now)
        fetched = self._broker_batch()
        self._take_in(fetched)
        # The consumer thread fetches only once the queue ran dry for this loop's own fetches:
        # it then waits for new messages without holding up this loop.
        self.consumer.want(self._wanted() if self._starved and not self._draining else 0)
        if now - self._last_housekeeping >= HOUSEKEEPING_INTERVAL:
            self._housekeeping(now)
        return len(taken) + len(fetched)

    def _autoscale(self) -> None:
        assert self.autoscaler is not None
        if self.autoscaler.scale(len(self.dispatcher.waiting)):
            self.concurrency = self.pool.size()
            self.dispatcher.extra_prefetch = self._extra_prefetch()
            self.dispatcher.dispatch()
        self.dispatcher.growth = self.autoscaler.headroom()

    def _wake_fds(self) -> list[object]:
        return [] if self._draining else [self.consumer.wakeup, self._wakeup]

    def _take_in(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            # Processes that came free during the broker round trip take the new messages
            # first, rather than the mailboxes of the busy ones.
            self.dispatcher.collect(self.pool.poll(0, self._wake_fds()))
        self.dispatcher.admit(deliveries)
        self.dispatcher.dispatch()

    def _broker_batch(self) -> list[Delivery]:
        """Record what finished and fetch what the pool can take, in one broker batch (one
        SQLite transaction settles the old and leases the new)."""
        finished = self.dispatcher.take_finished()
        self.answers.count(finished)
        wanted = self._wanted()
        fetching = wanted > 0 and (self._draining or not self._starved or bool(finished))
        try:
            return self.recorder.record(
                finished, self._refill if fetching else None, keep=not self._draining
            )
        except BrokerError as exc:  # the fetch alone failed: the consumer thread retries
            if self._draining:
                raise
            log.error("cannot fetch messages: %s", exc)
            self._starved = True
            return []

    def _refill(self) -> list[Delivery]:
        """Fetch what the pool can take, without waiting; note whether the queue ran dry.

        Raises:
            BrokerError: the broker cannot be reached.
        """
        asked = self._wanted()
        fresh = self.consumer.fetch_now(asked)
        self._starved = len(fresh) < asked
        return fresh

    def _wanted(self) -> int:
        """How many more messages to fetch: what the pool could use, less what is on its way,
        and none while outcomes wait to be recorded (no new work that could not be either)."""
        if self.recorder.backlog or self._stopping:
            return 0
        return max(0, self.dispatcher.wanted() - self.consumer.in_transit())

    def _read_commands(self, now: float) -> None:
        self._last_commands = now
        for termination in self.commands.refresh():
            if self.dispatcher.terminate(termination.task_id, termination.signum):
                log.info("terminating task %s (signal %d)", termination.task_id, termination.signum)
        self._apply_commands()

    def _apply_commands(self) -> None:
        """Apply the rate limits that ``app.control.rate_limit`` sent here."""
        for change in self.commands.take_rate_limits():
            if change.task not in self.app.tasks:
                log.warning("rate_limit for %s: no such task in this worker", change.task)
                continue
            try:
                self.dispatcher.set_rate_limit(change.task, change.rate)
            except ConfigurationError as exc:
                log.error("rate_limit for %s refused: %s", change.task, exc)
                continue
            log.info("rate limit of %s set to %s", change.task, change.rate or "none")
        self.answers.apply(self.commands.take_requests())

    def _housekeeping(self, now: float) -> None:
        self._last_housekeeping = now
        try:
            self.app.backend.cleanup()
            self.app.broker.recover()
        except Exception as exc:
            log.warning("housekeeping failed: %s", exc)

    # -- shutdown ----------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        cold = self._stopping >= COLD
        log.info("%s shutting down (%s)", self.hostname, "cold" if cold else "warm")
        self.consumer.stop()
        self.dispatcher.admit(self.consumer.take())
        self.dispatcher.give_back_waiting()
        if not cold:
            self._finish_running()
        self.dispatcher.collect(self.pool.stop(0), stopping=True)
        self.recorder.record(self.dispatcher.take_finished())
        self.recorder.flush(deadline=time.monotonic() + SHUTDOWN_RECORD_WAIT)
        self.keeper.stop()
        self.recorder.write_events()
        self.recorder.history.stop()
        self.heartbeat.stop()
        self.app.middleware.worker_stop(self)
        self.close()
        log.info("%s stopped", self.hostname)

    def _finish_running(self) -> None:
        grace = float(self.options.shutdown_timeout or self.app.conf.worker_shutdown_timeout)
        deadline = time.monotonic() + grace
        while self.pool.running() and self._stopping < COLD and time.monotonic() < deadline:
            finished = self.pool.poll(min(0.2, deadline - time.monotonic()), [self._wakeup])
            self.dispatcher.collect(finished, stopping=True)
            self._wakeup.clear()


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def run_worker(app: Celeriac, options: WorkerOptions | None = None) -> None:
    """Run a worker for ``app`` in this process until it is told to stop.

    Raises:
        ConfigurationError: a bad setting or option.
    """
    Worker(app, options).run()
