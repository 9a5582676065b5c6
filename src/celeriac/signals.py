"""A small signal: functions connected to it are called, in order, when it is sent.

It exists for Celery's ``@app.on_after_configure.connect``, the place where a project adds its
periodic tasks: workers and beat send it once when they start, after the task modules are
imported and before the schedule is read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, overload

Receiver = Callable[..., Any]


class Signal:
    """Receivers called with ``sender`` and keyword arguments; see the module docstring."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._receivers: list[tuple[Receiver, object | None]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Signal {self.name}: {len(self._receivers)} receivers>"

    @overload
    def connect(self, receiver: Receiver, /) -> Receiver: ...

    @overload
    def connect(
        self, receiver: None = None, /, *, sender: object | None = None
    ) -> Callable[[Receiver], Receiver]: ...

    def connect(
        self, receiver: Receiver | None = None, /, *, sender: object | None = None
    ) -> Receiver | Callable[[Receiver], Receiver]:
        """Connect ``receiver``: ``@signal.connect``, or ``@signal.connect(sender=app)`` to hear
        only that sender. Connecting a function twice connects it once. Returns the receiver,
        so it works as a decorator."""

        def add(function: Receiver) -> Receiver:
            with self._lock:
                if not any(r is function and s is sender for r, s in self._receivers):
                    self._receivers.append((function, sender))
            return function

        return add(receiver) if receiver is not None else add

    def disconnect(self, receiver: Receiver) -> bool:
        """Disconnect ``receiver``; False if it was not connected."""
        with self._lock:
            kept = [(r, s) for r, s in self._receivers if r is not receiver]
            removed = len(kept) != len(self._receivers)
            self._receivers = kept
        return removed

    def send(self, sender: object, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call every receiver (that listens to ``sender``) as ``receiver(sender=sender,
        signal=self, **named)``; returns each receiver with what it returned.

        Raises:
            Exception: whatever a receiver raised; later receivers are not called, because a
                setup function that failed must stop the start rather than pass unnoticed.
        """
        with self._lock:
            receivers = [r for r, s in self._receivers if s is None or s is sender]
        return [(r, r(sender=sender, signal=self, **named)) for r in receivers]
