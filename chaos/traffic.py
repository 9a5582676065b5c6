"""Sending ``chaos.note`` calls and writing each one into the ledger.

Each call gets its id from the sender (``task_id=``), so a publish that raises still names the
message it may have stored: that id becomes indeterminate rather than unknown.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid

from celeriac import Celeriac
from celeriac.exceptions import PublishError
from chaos.ledger import Ledger
from chaos.tasks import NOTE


class Sender:
    """Sends ``chaos.note(seq, seconds)`` calls; the ledger expects each to return ``seq``."""

    def __init__(self, client: Celeriac, ledger: Ledger, *, seconds: float = 0.0) -> None:
        self.client = client
        self.ledger = ledger
        self.seconds = seconds
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, *, countdown: float | None = None) -> str:
        """Send one call (to run ``countdown`` seconds from now, if given); return its id.

        Raises:
            PublishError: the message may not be enqueued (its id is noted as indeterminate).
        """
        with self._lock:
            seq = next(self._seq)
        task_id = str(uuid.uuid4())
        try:
            self.client.send_task(NOTE, (seq, self.seconds), task_id=task_id, countdown=countdown)
        except PublishError:
            self.ledger.indeterminate.add(task_id)
            raise
        self.ledger.enqueued(task_id, seq)
        return task_id

    def send_many(self, count: int) -> None:
        """Send ``count`` calls now; a failed publish is noted and the next one is tried."""
        for _ in range(count):
            with contextlib.suppress(PublishError):
                self.send()


class PacedSender(threading.Thread):
    """Sends ``count`` calls spread evenly over ``seconds``, in a thread, while faults happen."""

    def __init__(self, sender: Sender, count: int, seconds: float) -> None:
        super().__init__(name="chaos-sender", daemon=True)
        self.sender = sender
        self.count = count
        self.seconds = seconds
        self.failed: list[str] = []  # one line per publish that raised
        self.error: BaseException | None = None  # anything else it raised, which ends it

    def run(self) -> None:
        started = time.monotonic()
        try:
            for sent in range(1, self.count + 1):
                try:
                    self.sender.send()
                except PublishError as exc:
                    self.failed.append(str(exc))
                pause = started + sent * self.seconds / self.count - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        except BaseException as exc:  # reported by the scenario as a failed check
            self.error = exc

    def finish(self, timeout: float) -> None:
        """Wait for the last call to be sent."""
        self.join(timeout)
