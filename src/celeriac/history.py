"""Task events and task history: the types that the worker writes and the backends store.

A worker (and a client, with ``task_send_sent_event``) describes what happens to a task as
:class:`TaskEvent` s, Celery's event types. The result backend keeps them in an event log
(``ResultBackend.append_events``), which is the live feed (``read_events``, what
``celeriac events`` and ``app.events.Receiver`` read), and from which its readers index one
merged :class:`TaskEntry` per task, searched with a :class:`TaskQuery` (``history_tasks``) and
kept ``task_history_expires`` seconds. Workers' heartbeats are :class:`WorkerEntry` s.

How an event changes an entry is :func:`patch_of` (the fields it sets) and :func:`takes_state`
(whether its state replaces the entry's): every backend applies the same two rules, in Python,
SQL or Lua. This module is low in the layers: it imports nothing of celeriac but ``states``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from celeriac import states

SENT = "task-sent"
RECEIVED = "task-received"
STARTED = "task-started"
SUCCEEDED = "task-succeeded"
FAILED = "task-failed"
RETRIED = "task-retried"
REVOKED = "task-revoked"
REJECTED = "task-rejected"
PROGRESS = "task-progress"
TASK_EVENTS = (SENT, RECEIVED, STARTED, SUCCEEDED, FAILED, RETRIED, REVOKED, REJECTED, PROGRESS)

REJECTED_STATE = "REJECTED"  # Celery's state for a rejected task (not in celeriac.states)
PROGRESS_STATE = "PROGRESS"  # the state of a progress event whose fields name none

# The state each event type puts its task in (task-progress: its own ``state`` field).
EVENT_STATES: Mapping[str, str] = {
    SENT: states.PENDING,
    RECEIVED: states.RECEIVED,
    STARTED: states.STARTED,
    SUCCEEDED: states.SUCCESS,
    FAILED: states.FAILURE,
    RETRIED: states.RETRY,
    REVOKED: states.REVOKED,
    REJECTED: REJECTED_STATE,
}

# The text columns of an entry that an event may set, by event field (values become str).
TEXT_FIELDS = (
    "name",
    "args",
    "kwargs",
    "result",
    "exception",
    "traceback",
    "queue",
    "parent_id",
    "root_id",
    "group_id",
)
FEED_LENGTH = 10_000  # events the live feed keeps (the oldest are dropped)
TEXT_LIMIT = 16_384  # characters of one text field kept in the history (a result, a traceback)


@dataclass(frozen=True)
class TaskEvent:
    """Something that happened to one task, at ``timestamp`` (epoch seconds), on ``hostname``.

    ``type`` is one of :data:`TASK_EVENTS`. ``fields`` are Celery's for that type (``name``,
    ``args``, ``kwargs`` as JSON text, ``result`` as JSON text, ``exception``, ``traceback``,
    ``runtime``, ``retries``, ``queue``, ``parent_id``, ``root_id``, ``group_id``, ``children``,
    ``pid``; task-progress: ``state`` and ``meta``): JSON-ready values.
    """

    type: str
    task_id: str
    timestamp: float
    hostname: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The event as one flat dict, Celery's shape (``uuid``, ``type``, ``timestamp``,
        ``hostname`` and the fields)."""
        return {
            **self.fields,
            "type": self.type,
            "uuid": self.task_id,
            "timestamp": self.timestamp,
            "hostname": self.hostname,
        }

    def to_json(self) -> str:
        """The event as compact JSON text on one line (how the backends store it)."""
        try:
            return orjson.dumps(self.to_dict(), default=str).decode()
        except TypeError:  # what orjson refuses (an int past 64 bits): json takes it
            return json.dumps(self.to_dict(), separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskEvent:
        """The event that :meth:`to_dict` gave.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not an event.
        """
        rest = {k: v for k, v in data.items() if k not in ("type", "uuid", "timestamp", "hostname")}
        return cls(
            type=str(data["type"]),
            task_id=str(data["uuid"]),
            timestamp=float(data["timestamp"]),
            hostname=str(data.get("hostname") or ""),
            fields=rest,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> TaskEvent:
        """The event that :meth:`to_json` wrote.

        Raises:
            ValueError: ``text`` is not an event.
        """
        try:
            return cls.from_dict(json.loads(text))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a task event: {exc}") from exc

    @property
    def state(self) -> str:
        """The state this event puts its task in."""
        if self.type == PROGRESS:
            return str(self.fields.get("state") or PROGRESS_STATE)
        return EVENT_STATES.get(self.type, states.PENDING)


@dataclass(frozen=True)
class TaskEntry:
    """The merged history of one task: what its events said, latest state first.

    Text fields are '' when unknown (``args`` and ``kwargs`` also when ``dashboard_hide_args``
    hid them); times are epoch seconds or None. ``events`` (its timeline, oldest first) is
    filled only by ``ResultBackend.history_task``.
    """

    task_id: str
    name: str = ""
    state: str = states.PENDING
    args: str = ""
    kwargs: str = ""
    result: str = ""
    exception: str = ""
    traceback: str = ""
    retries: int = 0
    worker: str = ""
    queue: str = ""
    parent_id: str = ""
    root_id: str = ""
    group_id: str = ""
    children: tuple[str, ...] = ()
    sent: float | None = None
    received: float | None = None
    started: float | None = None
    finished: float | None = None
    runtime: float | None = None
    progress: Mapping[str, Any] | None = None
    events: tuple[TaskEvent, ...] = ()
    seen: float = 0.0  # the time of its first event: the order of listings, and of expiry
    state_time: float = 0.0  # the time of the event that set ``state``


@dataclass(frozen=True)
class TaskQuery:
    """A search of the history; every filter given must match. ``text`` is looked for in the
    args, kwargs and result; ``since``/``until`` bound the time the task was first seen."""

    state: str | None = None
    name: str | None = None
    worker: str | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class TaskPage:
    """One page of a search, newest first, and how many tasks matched in all."""

    tasks: tuple[TaskEntry, ...]
    total: int


@dataclass(frozen=True)
class WorkerEntry:
    """A worker as its latest heartbeat described it."""

    hostname: str
    online: bool = True
    last_heartbeat: float = 0.0
    pid: int = 0
    concurrency: int = 0
    pool: str = ""
    active: int = 0
    processed: int = 0
    loadavg: tuple[float, ...] = ()
    queues: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "hostname": self.hostname,
            "online": self.online,
            "last_heartbeat": self.last_heartbeat,
            "pid": self.pid,
            "concurrency": self.concurrency,
            "pool": self.pool,
            "active": self.active,
            "processed": self.processed,
            "loadavg": list(self.loadavg),
            "queues": list(self.queues),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerEntry:
        """The entry that :meth:`to_dict` gave.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not a worker entry.
        """
        return cls(
            hostname=str(data["hostname"]),
            online=bool(data.get("online", True)),
            last_heartbeat=float(data.get("last_heartbeat", 0.0)),
            pid=int(data.get("pid", 0)),
            concurrency=int(data.get("concurrency", 0)),
            pool=str(data.get("pool", "")),
            active=int(data.get("active", 0)),
            processed=int(data.get("processed", 0)),
            loadavg=tuple(float(x) for x in data.get("loadavg", ())),
            queues=tuple(str(q) for q in data.get("queues", ())),
        )


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:TEXT_LIMIT]


_TEXT_SET = frozenset(TEXT_FIELDS)
_MOMENTS = {
    SENT: "sent",
    RECEIVED: "received",
    STARTED: "started",
    SUCCEEDED: "finished",
    FAILED: "finished",
    REVOKED: "finished",
    REJECTED: "finished",
}


def patch_of(event: TaskEvent) -> dict[str, Any]:
    """The entry fields that ``event`` sets (state aside: see :func:`takes_state`).

    Keys are :class:`TaskEntry` field names; a field the event does not know is absent, so a
    patch never erases what an earlier event said. (On a worker's hot path: one pass over the
    event's few fields.)
    """
    patch: dict[str, Any] = {}
    for name, value in event.fields.items():
        if value is None or value == "":
            continue
        if name in _TEXT_SET:
            patch[name] = value[:TEXT_LIMIT] if type(value) is str else _text(value)
        elif name == "retries":
            patch["retries"] = int(value)
        elif name == "runtime":
            patch["runtime"] = float(value)
        elif name == "children":
            patch["children"] = tuple(str(c) for c in value)
    if event.hostname and event.type != SENT:
        patch["worker"] = event.hostname
    moment = _MOMENTS.get(event.type)
    if moment is not None:
        patch[moment] = event.timestamp
    elif event.type == PROGRESS:
        patch["progress"] = dict(event.fields.get("meta") or {})
    return patch


def takes_state(event: TaskEvent, entry_state_time: float | None) -> bool:
    """Whether ``event``'s state replaces that of an entry whose state was set at
    ``entry_state_time`` (None: the task has no entry yet).

    The later event wins. A task-sent never replaces a state: the client may write it after
    the worker has already received (and even finished) the task.
    """
    if entry_state_time is None:
        return True
    return event.type != SENT and event.timestamp >= entry_state_time


def apply(entry: TaskEntry | None, event: TaskEvent) -> TaskEntry:
    """``entry`` (None: a new task) with ``event`` merged in (not added to ``events``)."""
    changes = patch_of(event)
    if takes_state(event, None if entry is None else entry.state_time):
        changes["state"], changes["state_time"] = event.state, event.timestamp
    if entry is None:
        return TaskEntry(task_id=event.task_id, seen=event.timestamp, **changes)
    changes["seen"] = min(entry.seen, event.timestamp)
    return replace(entry, **changes)


@dataclass
class Folded:
    """What one batch of events says of one task (see :func:`fold`): the fields it sets, the
    state of its latest event that may set one (``takes``: False when all were task-sent),
    the time of its first event, and the events as JSON lines, in order."""

    patch: dict[str, Any]
    state: str
    state_time: float
    takes: bool
    seen: float
    lines: list[str]


def fold(events: Sequence[TaskEvent]) -> dict[str, Folded]:
    """The batch's events merged per task, by the rules of :func:`apply`, so that a backend
    writes each task once a batch (its stored entry then takes the ``Folded`` by the same
    rules: the later state wins if ``takes``; the earlier ``seen`` stays)."""
    folded: dict[str, Folded] = {}
    for event in events:
        line, sent = event.to_json(), event.type == SENT
        current = folded.get(event.task_id)
        if current is None:
            folded[event.task_id] = Folded(
                patch_of(event), event.state, event.timestamp, not sent, event.timestamp, [line]
            )
            continue
        current.patch.update(patch_of(event))
        current.lines.append(line)
        current.seen = min(current.seen, event.timestamp)
        if not sent and (not current.takes or event.timestamp >= current.state_time):
            current.state, current.state_time, current.takes = event.state, event.timestamp, True
    return folded


def timeline(events: Iterable[TaskEvent]) -> tuple[TaskEvent, ...]:
    """A task's events in the order they happened: by time, but its task-sent first. The
    client stamps task-sent with the broker's clock, the worker its events with its own, and
    a task received within a millisecond of being sent could otherwise show as received first.
    """
    return tuple(sorted(events, key=lambda e: (e.type != SENT, e.timestamp)))


def matches(entry: TaskEntry, query: TaskQuery) -> bool:
    """Whether ``entry`` passes every filter of ``query`` (its limit and offset aside)."""
    if query.state is not None and entry.state != query.state:
        return False
    if query.name is not None and entry.name != query.name:
        return False
    if query.worker is not None and entry.worker != query.worker:
        return False
    if query.since is not None and entry.seen < query.since:
        return False
    if query.until is not None and entry.seen > query.until:
        return False
    if query.text:
        return any(query.text in text for text in (entry.args, entry.kwargs, entry.result))
    return True


@dataclass
class SecondStats:
    """What finished in one second: the unit the backends count in, and sum into the
    buckets of ``history_series``."""

    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    runtime_sum: float = 0.0
    runtime_count: int = 0
    runtime_max: float = 0.0

    def add(self, event: TaskEvent) -> None:
        """Count ``event`` (only task-succeeded, -failed and -retried count)."""
        kind = {SUCCEEDED: "succeeded", FAILED: "failed", RETRIED: "retried"}.get(event.type)
        if kind is None:
            return
        setattr(self, kind, getattr(self, kind) + 1)
        runtime = event.fields.get("runtime")
        if runtime is not None and event.type != RETRIED:
            self.runtime_sum += float(runtime)
            self.runtime_count += 1
            self.runtime_max = max(self.runtime_max, float(runtime))

    def merge(self, other: SecondStats) -> None:
        """Add ``other``'s counts to these."""
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.retried += other.retried
        self.runtime_sum += other.runtime_sum
        self.runtime_count += other.runtime_count
        self.runtime_max = max(self.runtime_max, other.runtime_max)

    def as_tuple(self) -> tuple[int, int, int, float, int, float]:
        """The six numbers, in the order of the fields (how backends store them)."""
        return (
            self.succeeded,
            self.failed,
            self.retried,
            self.runtime_sum,
            self.runtime_count,
            self.runtime_max,
        )


def stats_by_second(events: Sequence[TaskEvent]) -> dict[int, SecondStats]:
    """The events' counts, by the whole second they happened in (those that count only)."""
    seconds: dict[int, SecondStats] = {}
    for event in events:
        if event.type in (SUCCEEDED, FAILED, RETRIED):
            seconds.setdefault(int(event.timestamp), SecondStats()).add(event)
    return seconds


MAX_BUCKETS = 10_000  # buckets one history_series call returns at most (the newest)


def series(
    seconds: Mapping[int, SecondStats], since: float, bucket: float, now: float
) -> list[dict[str, Any]]:
    """The buckets of ``history_series``: one per ``bucket`` seconds from ``since`` (rounded
    down to a multiple of ``bucket``) to ``now``, empty ones included, oldest first.

    Raises:
        ValueError: ``bucket`` is not positive.
    """
    if bucket <= 0:
        raise ValueError(f"a bucket must last a positive number of seconds, not {bucket!r}")
    first = (since // bucket) * bucket
    count = max(1, int((now - first) // bucket) + 1)
    first = max(first, first + (count - MAX_BUCKETS) * bucket)
    count = min(count, MAX_BUCKETS)
    totals = [SecondStats() for _ in range(count)]
    for second, stats in seconds.items():
        index = int((second - first) // bucket)
        if 0 <= index < count:
            totals[index].merge(stats)
    return [
        {
            "start": first + i * bucket,
            "succeeded": t.succeeded,
            "failed": t.failed,
            "retried": t.retried,
            "runtime_avg": t.runtime_sum / t.runtime_count if t.runtime_count else 0.0,
            "runtime_max": t.runtime_max,
        }
        for i, t in enumerate(totals)
    ]


__all__ = [
    "TASK_EVENTS",
    "Folded",
    "SecondStats",
    "TaskEntry",
    "TaskEvent",
    "TaskPage",
    "TaskQuery",
    "WorkerEntry",
    "apply",
    "fold",
    "matches",
    "patch_of",
    "series",
    "stats_by_second",
    "takes_state",
    "timeline",
]
