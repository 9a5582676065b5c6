"""``app.events``: reading the task events that workers record, as Celery's event receiver does.

Workers (and clients, with ``task_send_sent_event``) write task events to the result backend
(see ``celeriac.history`` and docs/design/monitoring.md). :class:`Receiver` reads the backend's
live feed from the moment it starts and calls a handler per event, with Celery's flat event
dict (``type``, ``uuid``, ``timestamp``, ``hostname`` and the fields)::

    def on_failed(event):
        print(event["uuid"], event["exception"])

    app.events.Receiver(handlers={"task-failed": on_failed, "*": print}).capture(limit=10)

The feed is polled (every ``poll_interval`` seconds while it is quiet): no broker exchange, no
connection to pass. Celery's first argument (a connection) is accepted and not used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from celeriac.history import TaskEvent

if TYPE_CHECKING:
    from celeriac.app import Celeriac

Handler = Callable[[dict[str, Any]], object]
POLL_INTERVAL = 0.2  # seconds between two reads of a quiet feed


class Receiver:
    """Calls ``handlers[event type]`` (or ``handlers['*']``) for each event recorded after it
    was made; see the module docstring."""

    def __init__(
        self,
        app: Celeriac,
        connection: object = None,
        handlers: Mapping[str, Handler] | None = None,
        *,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.app = app
        self.handlers = dict(handlers or {})
        self.poll_interval = poll_interval
        self.should_stop = False  # Celery's: set it (from a handler) to end capture()
        self.cursor: str | None = None

    def itercapture(
        self, limit: int | None = None, timeout: float | None = None
    ) -> Iterator[TaskEvent]:
        """The events as they are recorded, until ``limit`` of them, ``timeout`` seconds, or
        :attr:`should_stop`.

        Raises:
            BackendError: the result backend cannot be reached.
        """
        backend = self.app.backend
        if self.cursor is None:
            _, self.cursor = backend.read_events(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = 0
        while not self.should_stop and (limit is None or seen < limit):
            wanted = 1000 if limit is None else min(1000, limit - seen)
            events, self.cursor = backend.read_events(self.cursor, wanted)
            for event in events:
                seen += 1
                yield event
                if self.should_stop:
                    return
            if events:
                continue
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            time.sleep(self.poll_interval if left is None else min(self.poll_interval, left))

    def capture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> int:
        """Handle events until ``limit`` of them, ``timeout`` seconds, or :attr:`should_stop`;
        returns how many were handled. ``wakeup`` is Celery's and not used.

        Raises:
            BackendError: the result backend cannot be reached.
            Exception: whatever a handler raises.
        """
        handled = 0
        for event in self.itercapture(limit=limit, timeout=timeout):
            self.process(event)
            handled += 1
        return handled

    def process(self, event: TaskEvent) -> None:
        """Call the event's handler (or the ``'*'`` one), if any, with its dict."""
        handler = self.handlers.get(event.type) or self.handlers.get("*")
        if handler is not None:
            handler(event.to_dict())


class Events:
    """``app.events``: where the event receiver is made."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app

    def Receiver(  # Celery's name, capitalized
        self,
        connection: object = None,
        handlers: Mapping[str, Handler] | None = None,
        **options: Any,
    ) -> Receiver:
        """A :class:`Receiver` for this app (``connection`` is Celery's and not used)."""
        return Receiver(self.app, connection, handlers, **options)


def describe(event: TaskEvent) -> str:
    """One readable line for ``event`` (what ``celeriac events`` prints)."""
    stamp = time.strftime("%H:%M:%S", time.localtime(event.timestamp))
    stamp += f".{int(event.timestamp * 1000) % 1000:03d}"
    detail = _detail(event.type, event.fields)
    host = f" @{event.hostname}" if event.hostname else ""
    return f"{stamp} {event.type:<15} {event.task_id}{host} {detail}".rstrip()


def _detail(kind: str, fields: Mapping[str, Any]) -> str:
    if kind in ("task-sent", "task-received"):
        queue = f" -> {fields['queue']}" if kind == "task-sent" and fields.get("queue") else ""
        return f"{fields.get('name', '')}{_call(fields)}{queue}"
    if kind == "task-succeeded":
        return f"{fields.get('result', '')} in {_secs(fields)}"
    if kind == "task-failed":
        return f"{fields.get('exception', '')} in {_secs(fields)}"
    if kind in ("task-retried", "task-rejected"):
        return str(fields.get("exception", ""))
    if kind == "task-revoked":
        return "expired" if fields.get("expired") else "revoked"
    if kind == "task-progress":
        return f"{fields.get('state')} {fields.get('meta')}"
    return ""


def _call(fields: Mapping[str, Any]) -> str:
    args, kwargs = fields.get("args") or "", fields.get("kwargs") or ""
    if not args and not kwargs:
        return ""
    return f" args={args} kwargs={kwargs}"


def _secs(fields: Mapping[str, Any]) -> str:
    runtime = fields.get("runtime")
    return "?" if runtime is None else f"{float(runtime):.4f}s"
