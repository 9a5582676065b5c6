"""``TaskEvents``: the middleware that describes each task's life as Celery's task events.

In the worker's main process it turns the hooks into events (``after_fetch``: task-received;
``after_settle``: task-succeeded, -failed, -retried, -revoked or -rejected) and adds them to the
worker's :class:`EventBuffer`, which the recorder sends each turn to the worker's events
process, which appends them to the backend's event log (``worker/recorder.py``,
``worker/history_process.py``).
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

from celeriac import states
from celeriac.event_rows import EventRow, fields_of
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
    TaskEvent,
)
from celeriac.middleware.base import Middleware
from celeriac.serialization import JSON

if TYPE_CHECKING:
    from celeriac.backends.base import ResultBackend
    from celeriac.config import Settings
    from celeriac.execution import Outcome
    from celeriac.message import Message
    from celeriac.worker import Held, Worker

log = logging.getLogger("celeriac.events")


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


def message_fields(message: Message, hide: bool) -> dict[str, Any]:
    """The fields of a task-sent or task-received for ``message`` (Celery's names)."""
    return fields_of(_message_raw(message, hide))


# -- the worker's events, as rows (``celeriac.event_rows``) --------------------------------------
# The worker's main process, which every task goes through, records each event as a row that
# costs it a microsecond or so; only a reader of the backend's event log decodes it.


def _message_raw(message: Message, hide: bool) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": message.task,
        "retries": message.retries,
        "queue": message.queue,
        "eta": message.eta,
        "expires": message.expires,
    }
    if hide:
        raw["args"] = raw["kwargs"] = ""
    elif message.content_type == JSON:
        raw["body"] = message.body.decode("utf-8", "replace")
    else:
        raw["args"] = f"({len(message.body)} bytes of {message.content_type})"
        raw["kwargs"] = ""
    # unrolled: this runs for every message a worker takes in
    if message.parent_id is not None:
        raw["parent_id"] = message.parent_id
    if message.root_id is not None:
        raw["root_id"] = message.root_id
    if message.group_id is not None:
        raw["group_id"] = message.group_id
    return raw


def _payload_text(outcome: Outcome) -> str:
    if outcome.content_type != JSON:
        return f"({len(outcome.payload)} bytes of {outcome.content_type})"
    return outcome.payload.decode("utf-8", "replace")


def _failure_raw(outcome: Outcome) -> dict[str, Any]:
    """The exception's one-line description, and its stored payload (the traceback's source)."""
    return {"exception": outcome.reason, "error": outcome.payload.decode("utf-8", "replace")}


def outcome_row(held: Held, now: float) -> EventRow | None:
    """The row of the event that ends ``held``'s run, or None (requeued, given back,
    replaced, ignored, or not a task at all)."""
    message, outcome = held.message, held.outcome
    if message is None or outcome is None:
        return None
    # By name: execution.Action sits above the middleware in the layers.
    action = held.action.name if held.action is not None else ""
    if action == "RETRY":
        kind, raw = RETRIED, _failure_raw(outcome)
    elif action == "DEAD_LETTER":
        kind, raw = REJECTED, {**_failure_raw(outcome), "requeue": False}
    elif action in ("REQUEUE", "GIVE_BACK", "REPLACE") or not outcome.record:
        return None
    elif outcome.state == states.SUCCESS:
        raw = {"result": _payload_text(outcome), "runtime": outcome.runtime}
        if outcome.children:
            raw["children"] = list(outcome.children)
        return [SUCCEEDED, message.id, now, raw]
    elif outcome.state == states.REVOKED:
        kind = REVOKED
        raw = {"terminated": held.terminated, "expired": held.expired, "signum": held.signum}
    else:
        kind, raw = FAILED, {**_failure_raw(outcome), "runtime": outcome.runtime}
    raw["name"] = message.task  # refused at intake (revoked, unknown): it had no task-received
    return [kind, message.id, now, raw]


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
    """One worker's events since the recorder last took them, as rows (``EventRow``): the
    recorder sends them each turn to the worker's events process, which appends them to the
    backend's event log as they are."""

    def __init__(
        self, options: EventOptions, hostname: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.options = options
        self.hostname = hostname
        # The broker's clock, as the client's task-sent (``Message.sent_at``) has it: on Redis,
        # Redis's time (this host's plus an offset), so that a task's events compare.
        self.clock = clock
        self.pending: list[EventRow] = []
        # The clock's offset from this host's, read once a turn (``started``): an event is
        # stamped with time.time() plus it, a tenth of the clock's own cost (on Redis it is a
        # method that checks whether to ask Redis again). The per-task methods read it inline:
        # they run for every task, in the main process.
        self._offset: float | None = None

    @property
    def enabled(self) -> bool:
        """False when ``task_history`` is off: nothing is buffered."""
        return self.options.enabled

    def _read_offset(self) -> float:
        self._offset = offset = self.clock() - time.time()
        return offset

    def received(self, held: Held) -> None:
        """task-received, for a message that passed the checks."""
        message = held.message
        if self.options.enabled and message is not None:
            offset = self._offset
            if offset is None:
                offset = self._read_offset()
            raw = _message_raw(message, self.options.hide_args)
            self.pending.append([RECEIVED, message.id, time.time() + offset, raw])

    def started(self, running: Iterable[Held]) -> None:
        """task-started, once, for each message handed to the pool (by ``Held.started_at``);
        called once a turn, it also reads the clock's offset again."""
        if not self.options.enabled:
            return
        offset = self._read_offset()
        for held in running:
            self._start(held, offset)

    def _start(self, held: Held, offset: float) -> None:
        at, message = held.started_at, held.message  # at: this host's time.time()
        if at is None or message is None:
            return
        held.started_at = None  # told: Held.started stamps it again if it starts again
        self.pending.append([STARTED, message.id, at + offset, None])

    def settled(self, held: Held) -> None:
        """The event that ends the run (its task-started first, if not told yet)."""
        if not self.options.enabled:
            return
        offset = self._offset
        if offset is None:
            offset = self._read_offset()
        now = time.time() + offset
        if held.started_at is not None:
            self._start(held, offset)
        row = outcome_row(held, now)
        if row is not None:
            self.pending.append(row)

    def take(self) -> list[EventRow]:
        """Every row buffered, which the caller now owns."""
        pending, self.pending = self.pending, []
        return pending


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

    # The worker's buffer is looked up inline (its recorder's), not by a helper: these two run
    # for every task, in the main process.
    def after_fetch(self, worker: Worker, held: Held) -> None:
        """task-received."""
        buffer: EventBuffer | None = getattr(getattr(worker, "recorder", None), "events", None)
        if buffer is not None:
            buffer.received(held)

    def after_settle(self, worker: Worker, held: Held) -> None:
        """task-succeeded, -failed, -retried, -revoked or -rejected."""
        buffer: EventBuffer | None = getattr(getattr(worker, "recorder", None), "events", None)
        if buffer is not None:
            buffer.settled(held)
