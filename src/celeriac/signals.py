"""Signals: functions connected to one are called, in order, when it is sent.

Celery's signals are here under Celery's names, sent with Celery's arguments by one built-in
middleware (``celeriac.middleware.signals``)::

    from celeriac.signals import task_prerun

    @task_prerun.connect
    def on_prerun(sender=None, task_id=None, task=None, args=None, kwargs=None, **kw): ...

A receiver of those that raises is logged with its name and the others still run: a signal
never loses a task. ``app.on_after_configure`` is the exception: a project adds its periodic
tasks there, and a setup function that failed must stop the start rather than pass unnoticed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, overload

Receiver = Callable[..., Any]
log = logging.getLogger("celeriac.signals")


def _listens(expected: object | None, sender: object) -> bool:
    """Whether a receiver connected for ``expected`` hears ``sender``: any sender when None,
    the same object, or a task (or its name) when connected with a task name."""
    if expected is None or expected is sender:
        return True
    return isinstance(expected, str) and expected in (sender, getattr(sender, "name", None))


class Signal:
    """Receivers called with ``sender`` and keyword arguments; see the module docstring.

    ``robust`` signals log a receiver's exception and go on with the next receiver; the others
    raise it.
    """

    def __init__(self, name: str, *, robust: bool = False) -> None:
        self.name = name
        self.robust = robust
        self._receivers: list[tuple[Receiver, object | None]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Signal {self.name}: {len(self._receivers)} receivers>"

    @property
    def receivers(self) -> list[Receiver]:
        """The connected receivers, in the order they were connected."""
        return [receiver for receiver, _ in self._receivers]

    def has_receivers(self) -> bool:
        """True when anything is connected (senders check it before building arguments)."""
        return bool(self._receivers)

    @overload
    def connect(
        self, receiver: Receiver, /, *, sender: object | None = None, weak: bool = True
    ) -> Receiver: ...

    @overload
    def connect(
        self, receiver: None = None, /, *, sender: object | None = None, weak: bool = True
    ) -> Callable[[Receiver], Receiver]: ...

    def connect(
        self,
        receiver: Receiver | None = None,
        /,
        *,
        sender: object | None = None,
        weak: bool = True,
    ) -> Receiver | Callable[[Receiver], Receiver]:
        """Connect ``receiver``: ``@signal.connect``, or ``@signal.connect(sender=app)`` to hear
        only that sender (a task, or a task's name). Connecting a function twice connects it
        once. Returns the receiver, so it works as a decorator. ``weak`` is accepted for
        Celery's sake; receivers are always held strongly."""

        def add(function: Receiver) -> Receiver:
            with self._lock:
                if not any(r is function and s is sender for r, s in self._receivers):
                    self._receivers = [*self._receivers, (function, sender)]
            return function

        return add(receiver) if receiver is not None else add

    def disconnect(self, receiver: Receiver, sender: object | None = None) -> bool:
        """Disconnect ``receiver``; False if it was not connected."""
        with self._lock:
            kept = [(r, s) for r, s in self._receivers if r is not receiver]
            removed = len(kept) != len(self._receivers)
            self._receivers = kept
        return removed

    def send(self, sender: object, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call every receiver that listens to ``sender`` as ``receiver(sender=sender,
        signal=self, **named)``; returns each receiver with what it returned (a robust signal
        gives the exception for a receiver that raised).

        Raises:
            Exception: whatever a receiver of a signal that is not robust raised; later
                receivers are not called.
        """
        replies: list[tuple[Receiver, Any]] = []
        for receiver, expected in self._receivers:  # replaced, never changed: no lock needed
            if not _listens(expected, sender):
                continue
            try:
                replies.append((receiver, receiver(sender=sender, signal=self, **named)))
            except Exception as exc:
                if not self.robust:
                    raise
                log.exception("receiver %s of signal %s failed", _name(receiver), self.name)
                replies.append((receiver, exc))
        return replies


def _name(receiver: Receiver) -> str:
    module = getattr(receiver, "__module__", None) or "?"
    return f"{module}.{getattr(receiver, '__qualname__', repr(receiver))}"


# Celery's signals, with the arguments Celery sends (see celeriac.middleware.signals).
before_task_publish = Signal("before_task_publish", robust=True)
after_task_publish = Signal("after_task_publish", robust=True)
task_prerun = Signal("task_prerun", robust=True)
task_postrun = Signal("task_postrun", robust=True)
task_success = Signal("task_success", robust=True)
task_failure = Signal("task_failure", robust=True)
task_retry = Signal("task_retry", robust=True)
task_revoked = Signal("task_revoked", robust=True)
worker_ready = Signal("worker_ready", robust=True)
worker_shutdown = Signal("worker_shutdown", robust=True)
worker_process_init = Signal("worker_process_init", robust=True)
beat_init = Signal("beat_init", robust=True)
task_unknown = Signal("task_unknown", robust=True)
task_rejected = Signal("task_rejected", robust=True)
task_received = Signal("task_received", robust=True)
worker_init = Signal("worker_init", robust=True)
celeryd_init = Signal("celeryd_init", robust=True)
worker_process_shutdown = Signal("worker_process_shutdown", robust=True)
setup_logging = Signal("setup_logging", robust=True)
after_setup_logger = Signal("after_setup_logger", robust=True)
after_setup_task_logger = Signal("after_setup_task_logger", robust=True)

__all__ = [
    "Signal",
    "after_setup_logger",
    "after_setup_task_logger",
    "after_task_publish",
    "beat_init",
    "before_task_publish",
    "celeryd_init",
    "setup_logging",
    "task_failure",
    "task_postrun",
    "task_prerun",
    "task_received",
    "task_rejected",
    "task_retry",
    "task_revoked",
    "task_success",
    "task_unknown",
    "worker_init",
    "worker_process_init",
    "worker_process_shutdown",
    "worker_ready",
    "worker_shutdown",
]
