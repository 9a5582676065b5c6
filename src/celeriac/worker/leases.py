"""Keeping the leases of held messages alive, from a thread of the main process.

Every ``lease / 3`` seconds the keeper extends every lease the worker holds, in one broker call.
Because this thread never runs user code, a task that holds the GIL in a child or blocks in C for
an hour still keeps its lease. A lease the broker refuses to extend is lost: another worker may
already run the message, so its outcome here must not be recorded (``confirm``).

A message being settled (``settling``, from just before the recorder's broker batch until
``release``) is no news when an extension is refused: the batch's own acknowledgement may have
removed it a moment before the extension reached the broker. Whether that lease was still ours
is then the settle's answer (``ack_many``'s flags), not this thread's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from celeriac.brokers.base import Broker, Delivery
from celeriac.exceptions import BrokerError

log = logging.getLogger("celeriac.worker")

_Key = tuple[str, str]


def _key(delivery: Delivery) -> _Key:
    return delivery.tag, delivery.token


class LeaseKeeper:
    """Renews held leases in the background; tells whether a lease is still ours."""

    def __init__(self, broker: Broker, lease: float) -> None:
        self.broker = broker
        self.lease = lease
        self.interval = max(lease / 3, 0.1)
        self._lock = threading.Lock()
        self._held: dict[_Key, Delivery] = {}
        self._renewed: dict[_Key, float] = {}
        self._lost: set[_Key] = set()
        self._settling: set[_Key] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="celeriac-leases", daemon=True)

    def start(self) -> None:
        """Start renewing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (held leases then run out on their own)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def hold(self, deliveries: Sequence[Delivery], fetched_at: float) -> None:
        """Start renewing these leases (taken at monotonic time ``fetched_at``)."""
        with self._lock:
            for delivery in deliveries:
                key = _key(delivery)
                self._held[key] = delivery
                self._renewed[key] = fetched_at

    def settling(self, deliveries: Sequence[Delivery]) -> None:
        """These messages are being settled: an extension refused from now until
        :meth:`release` (or :meth:`unsettled`) means nothing (see the module docstring)."""
        with self._lock:
            self._settling.update(_key(d) for d in deliveries)

    def unsettled(self, deliveries: Sequence[Delivery]) -> None:
        """Settling these failed (the broker could not be reached): they are held as before."""
        with self._lock:
            self._settling.difference_update(_key(d) for d in deliveries)

    def release(self, deliveries: Sequence[Delivery]) -> None:
        """Stop renewing these leases (their messages are settled)."""
        with self._lock:
            for delivery in deliveries:
                key = _key(delivery)
                self._held.pop(key, None)
                self._renewed.pop(key, None)
                self._lost.discard(key)
                self._settling.discard(key)

    def held(self) -> list[Delivery]:
        """Every delivery whose lease is being renewed."""
        with self._lock:
            return list(self._held.values())

    def confirm(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Whether each lease is still ours, asking the broker only when in doubt.

        A lease renewed less than half a lease ago is ours; an older one (the process was
        frozen, or the broker was unreachable) is checked by extending it now.

        Raises:
            BrokerError: the broker cannot be reached to check a doubtful lease.
        """
        now = time.monotonic()
        with self._lock:
            doubtful = [
                d
                for d in deliveries
                if _key(d) not in self._lost
                and now - self._renewed.get(_key(d), 0.0) >= self.lease / 2
            ]
        if doubtful:
            self._apply(doubtful, self.broker.extend(doubtful, self.lease), now)
        with self._lock:
            return [_key(d) not in self._lost for d in deliveries]

    def _apply(self, deliveries: Sequence[Delivery], kept: Sequence[bool], at: float) -> None:
        with self._lock:
            for delivery, ok in zip(deliveries, kept, strict=True):
                key = _key(delivery)
                if key not in self._held or (not ok and key in self._settling):
                    continue
                if ok:
                    self._renewed[key] = at
                elif key not in self._lost:
                    self._lost.add(key)
                    log.warning(
                        "lease of message %s lost: another worker may run it; "
                        "its outcome here will not be recorded",
                        delivery.tag,
                    )

    def _run(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            with self._lock:
                due = [d for k, d in self._held.items() if k not in self._lost]
            if not due:
                wait = self.interval
                continue
            started = time.monotonic()
            try:
                kept = self.broker.extend(due, self.lease)
            except BrokerError as exc:
                log.warning("could not renew %d leases: %s", len(due), exc)
                wait = min(self.interval, 1.0)
                continue
            self._apply(due, kept, started)
            wait = self.interval
