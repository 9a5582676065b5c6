"""Fetching messages from a thread of the main process, only as many as there are free slots.

The fetch may block (waiting for a message is the broker's job), so it runs in its own thread and
hands deliveries to the main loop through a queue and a wake-up pipe. It never holds more
messages than the worker has slots for, so an idle worker elsewhere is never starved by messages
sitting here.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence

from celeriac.brokers.base import Broker, Delivery
from celeriac.exceptions import BrokerError
from celeriac.worker.leases import LeaseKeeper
from celeriac.worker.wakeup import WakePipe

log = logging.getLogger("celeriac.worker")
FETCH_WAIT = 0.5  # seconds a fetch may block, so that stopping is prompt
MAX_BATCH = 100


class Consumer:
    """Fetches up to ``capacity`` messages at a time; see the module docstring."""

    def __init__(
        self,
        broker: Broker,
        queues: Sequence[str],
        *,
        capacity: int,
        lease: float,
        name: str,
        keeper: LeaseKeeper,
    ) -> None:
        self.broker = broker
        self.queues = list(queues)
        self.capacity = capacity
        self.lease = lease
        self.name = name
        self.keeper = keeper
        self.wakeup = WakePipe()  # readable when deliveries are waiting in take()
        self._cond = threading.Condition()
        self._outstanding = 0
        self._handoff: collections.deque[Delivery] = collections.deque()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="celeriac-consumer", daemon=True)

    def start(self) -> None:
        """Start fetching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop fetching and wait for a fetch under way to return."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(FETCH_WAIT * 4 + 5)

    def close(self) -> None:
        """Release the wake-up pipe (after :meth:`stop`)."""
        self.wakeup.close()

    def take(self) -> list[Delivery]:
        """The deliveries fetched since the last call."""
        self.wakeup.clear()
        with self._cond:
            taken = list(self._handoff)
            self._handoff.clear()
            return taken

    def exchange(self, settled: int, taken: int) -> None:
        """``settled`` deliveries are done with, and the main loop fetched ``taken`` new ones
        into their slots itself; whatever it did not refill goes back to this thread."""
        with self._cond:
            self._outstanding += taken - settled
            if taken < settled:
                self._cond.notify_all()

    def fetch_now(self, limit: int) -> list[Delivery]:
        """Fetch up to ``limit`` messages without waiting, for slots the caller holds.

        The main loop refills the slots of the messages it is settling with this, inside the
        same broker batch (one SQLite transaction settles the old and leases the new), so
        that while messages flow this thread does not need to wake up at all.

        Raises:
            BrokerError: the broker cannot be reached.
        """
        if limit < 1:
            return []
        deliveries = self.broker.fetch(
            self.queues, min(limit, MAX_BATCH), lease=self.lease, consumer=self.name, timeout=0
        )
        self.keeper.hold(deliveries, time.monotonic())
        return deliveries

    def _reserve(self) -> int:
        """Wait for free slots and reserve them all for one fetch."""
        with self._cond:
            while not self._stopped and self._outstanding >= self.capacity:
                self._cond.wait()
            if self._stopped:
                return 0
            free = min(self.capacity - self._outstanding, MAX_BATCH)
            self._outstanding += free
            return free

    def _run(self) -> None:
        backoff = 0.1
        while (reserved := self._reserve()) > 0:
            try:
                deliveries = self.broker.fetch(
                    self.queues,
                    reserved,
                    lease=self.lease,
                    consumer=self.name,
                    timeout=FETCH_WAIT,
                )
            except BrokerError as exc:
                self.exchange(reserved, 0)
                log.error("cannot fetch messages: %s (retrying in %.1fs)", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.1
            if deliveries:
                self.keeper.hold(deliveries, time.monotonic())
            with self._cond:
                self._outstanding -= reserved - len(deliveries)
                self._handoff.extend(deliveries)
            if deliveries:
                self.wakeup.wake()
