"""``TaskEvents``: the middleware that describes each task's life as Celery's task events.

In the worker's main process it turns the hooks into events (``after_fetch``: task-received;
``after_settle``: task-succeeded, -failed, -retried, -revoked or -rejected) and adds them to the
worker's :class:`EventBuffer`, which the recorder sends each turn to the worker's events
process, which writes them in bulk (``worker/recorder.py``, ``worker/history_process.py``).
task-started has no hook (a job handed to the pool is the dispatcher's business): the recorder
stamps it from ``Held.started_at`` as it hands the events over.
On the client, with ``task_send_sent_event``, ``after_publish`` writes task-sent at once.
task-progress is written by ``Task.update_state`` (``task.py``). See docs/design/monitoring.md.

Nothing here decodes what it need not: args and kwargs are copied from a JSON body as text
(by orjson), a pickled body is only described, and the result is the JSON text stored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from celeriac import states
from celeriac.history import (
    FAILED,
    PROGRESS,
    RECEIVED,
    REJECTED,
    RETRIED,
    REVOKED,
    SENT,
    STARTED,
    SUCCEEDED,
    TEXT_LIMIT,
    TaskEvent,
)
from celeriac.middleware.base import Middleware
from celeriac.serialization import JSON, exception_info

if TYPE_CHECKING:
    from celeriac.backends.base import ResultBackend
    from celeriac.config import Settings
    from celeriac.execution import Outcome
    from celeriac.message import Message
    from celeriac.worker import Held, Worker

log = logging.getLogger("celeriac.events")
MAX_PENDING = 100_000  # events a worker keeps while the backend cannot be reached, at most
HOLD = 0.5  # seconds a running task's events may wait for its outcome, to be written with it
_ENDINGS = frozenset({SUCCEEDED, FAILED, RETRIED, REVOKED, REJECTED})


@dataclass(frozen=True)
class EventOptions:
    """The settings that shape events, read once (``EventOptions.from_settings``)."""

    enabled: bool = True  # task_history
    retention: float | None = 7 * 86400.0  # task_history_expires
    hide_args: bool = False  # dashboard_hide_args
    send_sent: bool = False  # task_send_sent_event

    @classmethod
    def from_settings(cls, conf: Settings) -> EventOptions:
        """The options of an app's settings.

        Raises:
            ConfigurationError: ``task_history_expires`` is not a number of seconds.
        """
        return cls(
            enabled=bool(conf["task_history"]),
            retention=conf.seconds("task_history_expires"),
            hide_args=bool(conf["dashboard_hide_args"]),
            send_sent=bool(conf["task_send_sent_event"]),
        )


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + "..."


def arguments_text(message: Message, hide: bool) -> tuple[str, str]:
    """A message's args and kwargs as JSON text ('' when hidden; a description when the body
    is not JSON: the main process never unpickles)."""
    if hide:
        return "", ""
    if message.content_type != JSON:
        return f"({len(message.body)} bytes of {message.content_type})", ""
    try:
        args, kwargs = orjson.loads(message.body)
        return _clip(orjson.dumps(args).decode()), _clip(orjson.dumps(kwargs).decode())
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return "", ""


def message_fields(message: Message, hide: bool) -> dict[str, Any]:
    """The fields of a task-sent or task-received for ``message`` (Celery's names)."""
    args, kwargs = arguments_text(message, hide)
    fields: dict[str, Any] = {
        "name": message.task,
        "args": args,
        "kwargs": kwargs,
        "retries": message.retries,
        "queue": message.queue,
        "eta": message.eta,
        "expires": message.expires,
    }
    for name in ("parent_id", "root_id", "group_id"):
        if (value := getattr(message, name)) is not None:
            fields[name] = value
    return fields


def _result_text(outcome: Outcome) -> str:
    if outcome.content_type != JSON:
        return f"({len(outcome.payload)} bytes of {outcome.content_type})"
    return _clip(outcome.payload.decode("utf-8", "replace"))


def _failure_fields(outcome: Outcome) -> dict[str, Any]:
    info = exception_info(outcome.payload)
    return {"exception": outcome.reason, "traceback": _clip(str(info.get("traceback") or ""))}


def outcome_event(held: Held, hostname: str, now: float) -> TaskEvent | None:
    """The event that ends ``held``'s run, or None (requeued, given back, replaced, ignored,
    or not a task at all)."""
    message, outcome = held.message, held.outcome
    if message is None or outcome is None:
        return None
    # By name: execution.Action sits above the middleware in the layers.
    action = held.action.name if held.action is not None else ""
    kind, fields = _kind_and_fields(outcome, action)
    if action == "DEAD_LETTER":
        kind, fields = REJECTED, {**_failure_fields(outcome), "requeue": False}
    elif outcome.state == states.REVOKED:
        fields = {"terminated": held.terminated, "expired": held.expired, "signum": held.signum}
    if kind is None:
        return None
    if kind != SUCCEEDED:  # a message refused at intake (revoked, unknown) had no task-received
        fields["name"] = message.task
    return TaskEvent(kind, message.id, now, hostname, fields)


def _kind_and_fields(outcome: Outcome, action: str) -> tuple[str | None, dict[str, Any]]:
    if action == "RETRY":
        return RETRIED, _failure_fields(outcome)
    if action in ("REQUEUE", "GIVE_BACK", "REPLACE") or not outcome.record:
        return None, {}
    if outcome.state == states.SUCCESS:
        fields: dict[str, Any] = {"result": _result_text(outcome), "runtime": outcome.runtime}
        if outcome.children:
            fields["children"] = list(outcome.children)
        return SUCCEEDED, fields
    if outcome.state == states.REVOKED:
        return REVOKED, {}
    return FAILED, {**_failure_fields(outcome), "runtime": outcome.runtime}


def record_progress(
    conf: Settings, backend: ResultBackend, task_id: str, state: str, meta: Any, hostname: str
) -> None:
    """Write task-progress at once (``Task.update_state``, where the task runs), unless
    ``task_history`` is off. A failure is logged, never raised: the state itself is stored."""
    if not conf["task_history"]:
        return
    try:
        safe = json.loads(json.dumps(meta, default=str))
    except ValueError:  # pragma: no cover - json.dumps with default=str takes anything
        safe = str(meta)
    fields = {"state": state, "meta": safe if isinstance(safe, dict) else {"value": safe}}
    event = TaskEvent(PROGRESS, task_id, time.time(), hostname, fields)
    try:
        backend.record_events([event], retention=conf.seconds("task_history_expires"))
    except Exception as exc:
        log.warning("could not record task-progress for %s: %s", task_id, exc)


class EventBuffer:
    """One worker's events, waiting for the recorder's next turn (see the module docstring;
    the worker takes them all each turn, ``take(everything=True)``, and its history writer
    does the holding back described here).

    ``take`` hands them over: those of tasks that ended, and the others once they are
    ``HOLD`` seconds old. A short task's received, started and outcome thus go in one write,
    where the backend merges them into its entry once rather than three times (the cost of
    history is a write per task, not per event); a long one shows as started within ``HOLD``.
    ``restore`` puts events back when a write failed, keeping at most ``MAX_PENDING`` (the
    oldest are dropped: events are for watching, never for correctness).
    """

    def __init__(self, options: EventOptions, hostname: str) -> None:
        self.options = options
        self.hostname = hostname
        self.pending: list[TaskEvent] = []

    @property
    def enabled(self) -> bool:
        """False when ``task_history`` is off: nothing is buffered."""
        return self.options.enabled

    def received(self, held: Held) -> None:
        """task-received, for a message that passed the checks."""
        message = held.message
        if self.enabled and message is not None:
            fields = message_fields(message, self.options.hide_args)
            self.pending.append(TaskEvent(RECEIVED, message.id, time.time(), self.hostname, fields))

    def started(self, running: Iterable[Held]) -> None:
        """task-started, once, for each message handed to the pool (by ``Held.started_at``)."""
        if not self.enabled:
            return
        for held in running:
            self._start(held)

    def _start(self, held: Held) -> None:
        at, message = held.started_at, held.message
        if at is None or message is None:
            return
        held.started_at = None  # told: Held.started stamps it again if it starts again
        self.pending.append(TaskEvent(STARTED, message.id, at, self.hostname, {}))

    def settled(self, held: Held) -> None:
        """The event that ends the run (its task-started first, if not told yet)."""
        if not self.enabled:
            return
        self._start(held)
        event = outcome_event(held, self.hostname, time.time())
        if event is not None:
            self.pending.append(event)

    def take(self, everything: bool = False) -> list[TaskEvent]:
        """The events due (all of them with ``everything``), which the caller now owns."""
        pending = self.pending
        if everything or not pending:
            self.pending = []
            return pending
        ended = {e.task_id for e in pending if e.type in _ENDINGS}
        old = time.time() - HOLD
        due, kept = [], []
        for event in pending:
            if event.task_id in ended or event.timestamp <= old:
                due.append(event)
            else:
                kept.append(event)
        self.pending = kept
        return due

    def restore(self, events: list[TaskEvent]) -> None:
        """Put back events that could not be written (before any added since)."""
        self.pending = events + self.pending
        if len(self.pending) > MAX_PENDING:
            dropped = len(self.pending) - MAX_PENDING
            log.warning("dropping %d task events: the backend could not take them", dropped)
            self.pending = self.pending[dropped:]


class TaskEvents(Middleware):
    """Emits task events (see the module docstring). ``conf`` and ``backend`` are read when
    needed, so the middleware can be built before the app is configured."""

    def __init__(
        self,
        conf: Callable[[], Settings],
        backend: Callable[[], ResultBackend],
    ) -> None:
        self._conf = conf
        self._backend = backend

    def after_publish(self, message: Message) -> None:
        """task-sent, written at once, when ``task_send_sent_event`` is set."""
        conf = self._conf()
        if not (conf["task_send_sent_event"] and conf["task_history"]):
            return
        options = EventOptions.from_settings(conf)
        fields = message_fields(message, options.hide_args)
        event = TaskEvent(SENT, message.id, message.sent_at, "", fields)  # before it was sent
        try:
            self._backend().record_events([event], retention=options.retention)
        except Exception as exc:  # the message is sent: an event is never worth failing it
            log.warning("could not record task-sent for %s: %s", message.id, exc)

    def after_fetch(self, worker: Worker, held: Held) -> None:
        """task-received."""
        buffer = _buffer(worker)
        if buffer is not None:
            buffer.received(held)

    def after_settle(self, worker: Worker, held: Held) -> None:
        """task-succeeded, -failed, -retried, -revoked or -rejected."""
        buffer = _buffer(worker)
        if buffer is not None:
            buffer.settled(held)


def _buffer(worker: Worker) -> EventBuffer | None:
    recorder = getattr(worker, "recorder", None)
    return getattr(recorder, "events", None)
