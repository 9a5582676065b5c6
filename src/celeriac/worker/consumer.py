"""Fetching messages from a thread of the main process, only as many as there are free slots.

The fetch may block (waiting for a message is the broker's job), so it runs in its own thread and
hands deliveries to the main loop through a queue and a wake-up pipe. The main loop says after
every turn how many messages it wants (``want``: its free slots, less what it already holds);
this thread never fetches more, so an idle worker elsewhere is never starved by messages sitting
here. While messages flow, the main loop fetches for itself (``fetch_now``) in the same broker
batch that records outcomes, and this thread has nothing to do.
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
    """Fetches what the main loop wants; see the module docstring."""

    def __init__(
        self,
        broker: Broker,
        queues: Sequence[str],
        *,
        lease: float,
        name: str,
        keeper: LeaseKeeper,
    ) -> None:
        self.broker = broker
        self.queues = list(queues)
        self.lease = lease
        self.name = name
        self.keeper = keeper
        self.wakeup = WakePipe()  # readable when deliveries are waiting in take()
        self._cond = threading.Condition()
        self._wanted = 0  # set by the main loop every turn
        self._reserved = 0  # being fetched by this thread right now
        self._handoff: collections.deque[Delivery] = collections.deque()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="celeriac-consumer", daemon=True)

    def start(self) -> None:
        """Start fetching."""
        self.wakeup.open()  # before the thread that wakes it
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

    def want(self, count: int) -> None:
        """The main loop wants ``count`` more messages than it holds (0: none)."""
        with self._cond:
            self._wanted = max(0, count)
            if self._wanted > self._reserved + len(self._handoff):
                self._cond.notify_all()

    def in_transit(self) -> int:
        """Messages fetched or being fetched here that the main loop has not taken yet."""
        with self._cond:
            return self._reserved + len(self._handoff)

    def fetch_now(self, limit: int) -> list[Delivery]:
        """Fetch up to ``limit`` messages without waiting, for slots the caller holds.

        The main loop refills its free slots with this, inside the same broker batch that
        records outcomes (one SQLite transaction settles the old and leases the new), so that
        while messages flow this thread does not need to wake up at all.

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
        """Wait until the main loop wants more than is on its way, and reserve the difference."""
        with self._cond:
            while not self._stopped and self._wanted <= self._reserved + len(self._handoff):
                self._cond.wait()
            if self._stopped:
                return 0
            count = min(self._wanted - self._reserved - len(self._handoff), MAX_BATCH)
            self._reserved += count
            return count

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
                with self._cond:
                    self._reserved -= reserved
                log.error("cannot fetch messages: %s (retrying in %.1fs)", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.1
            if deliveries:
                self.keeper.hold(deliveries, time.monotonic())
            with self._cond:
                self._reserved -= reserved
                self._handoff.extend(deliveries)
                if deliveries:
                    # Fetch again only once the main loop has started these and says what it
                    # still wants: a fetch now would hold the GIL (and a core) while the main
                    # loop hands them to the pool, on the way from a publish to a result.
                    self._wanted = 0
            if deliveries:
                self.wakeup.wake()
