"""Task history and events of the Redis backend: a stream, hashes and sorted sets.

Workers append frames of event rows to the event log, the stream ``hist:log``, one ``XADD`` a
frame (``append_events``). Every read of the history first indexes what the log holds past the
index position (``backends/history_log.py``): each step is one run of
``redis_lua/history_record.lua`` (whose header has the key layout), which merges about a
hundred tasks' events into their entries and moves the position, if no other reader did.
Searches run ``history_query.lua``: a page by rank in one sorted set when one filter (or none)
is given, else a walk of the smallest set. The live feed reads the log. Everything lives under
``<global_keyprefix>celeriac:hist:``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from celeriac._redis.connect import as_bytes
from celeriac._redis.scripts import Arg
from celeriac.backends.history_log import FEED_SECONDS, Indexing, LogBatch, recent
from celeriac.event_rows import frame_events
from celeriac.exceptions import BackendError
from celeriac.history import (
    Folded,
    SecondStats,
    TaskEntry,
    TaskEvent,
    TaskPage,
    TaskQuery,
    WorkerEntry,
    apply,
    fold,
    series,
    stats_by_second,
)
from celeriac.history import (
    timeline as ordered,
)

if TYPE_CHECKING:
    from celeriac._redis.database import RedisDatabase

PRUNE_LIMIT = 1000  # expired entries one write deletes at most, so that no script runs long


def _search_text(patch: dict[str, Any]) -> str:
    """What the batch says of the searched fields, as history_record.lua takes it: '' when
    it says nothing of them, else "<args>\\0<kwargs>\\0<result>" ('' for each unsaid)."""
    args, kwargs, result = patch.get("args"), patch.get("kwargs"), patch.get("result")
    if args is None and kwargs is None and result is None:
        return ""
    return f"{args or ''}\0{kwargs or ''}\0{result or ''}"


def _task_args(task_id: str, f: Folded) -> list[Arg]:
    """history_record.lua's arguments for one task's folded events. Only what the script
    indexes and merges goes as fields; the rest of the entry is read from its timeline."""
    patch = f.patch
    return [
        task_id,
        f.state,
        f"{f.state_time:.6f}",
        "1" if f.takes else "0",
        f"{f.seen:.6f}",
        patch.get("name", ""),
        patch.get("worker", ""),
        _search_text(patch),
        "\n".join(f.lines),
    ]


def _entry(task_id: str, flat: Sequence[Any], *, with_events: bool = False) -> TaskEntry:
    """The entry stored as ``flat`` (HGETALL's reply): its timeline folded by
    ``history.apply``, with the state, its time and ``seen`` as the script merged them (the
    authority when events came out of order). Entries an older version wrote, with every
    field, read the same: their timeline is there too."""
    raw = {
        as_bytes(k).decode(): as_bytes(v).decode()
        for k, v in zip(flat[::2], flat[1::2], strict=True)
    }
    events = ordered(_lines([raw["events"]])) if raw.get("events") else ()
    entry: TaskEntry | None = None
    for event in events:
        entry = apply(entry, event)
    if entry is None:
        entry = TaskEntry(task_id=task_id)
    return replace(
        entry,
        state=raw.get("state") or entry.state,
        state_time=float(raw.get("state_time") or entry.state_time),
        seen=float(raw.get("seen") or entry.seen),
        events=events if with_events else (),
    )


def _lines(chunks: Sequence[Any]) -> list[TaskEvent]:
    """The events in chunks of JSON lines (a timeline's elements, a feed entry)."""
    return [TaskEvent.from_json(line) for chunk in chunks for line in as_bytes(chunk).splitlines()]


def _batch(raw_id: Any, fields: Any) -> LogBatch:
    """A log entry (XRANGE's reply: its id and its fields, flat or, on RESP3, a map)."""
    if not isinstance(fields, dict):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    named = {as_bytes(k).decode(): as_bytes(v) for k, v in fields.items()}
    ttl = named.get("t", b"")
    return LogBatch(
        position=as_bytes(raw_id).decode(),
        hostname=named.get("h", b"").decode(),
        frame=named.get("r", b""),
        retention=float(ttl) if ttl else None,
    )


def _bound(value: float | None, default: str) -> str:
    return default if value is None else repr(float(value))


class RedisHistory:
    """What ``RedisBackend``'s history methods do, on its server (see the module docstring)."""

    def __init__(
        self,
        db: RedisDatabase,
        prefix: str,
        now: Callable[[], str],
        clock: Callable[[], float],
    ) -> None:
        self.db = db
        self.clock = clock
        self.prefix = prefix + "hist:"  # the backend's "<global_keyprefix>celeriac:"
        self._now = now
        self._record = db.script("celeriac.backends", "history_record")
        self._query = db.script("celeriac.backends", "history_query")
        self._catch_up = Indexing(self)

    def _errors(self, what: str) -> Any:
        return self.db.errors(what, BackendError)

    def append_events(
        self, hostname: str, frames: Sequence[bytes], *, retention: float | None
    ) -> None:
        """See ``ResultBackend.append_events``: one ``XADD`` a frame, in one round trip. The
        log never keeps a frame longer than its retention, indexed or not.

        Raises:
            BackendError: Redis cannot be reached.
        """
        if not frames:
            return
        ttl: Arg = ""
        trim: tuple[Arg, ...] = ()
        if retention is not None:
            ttl = repr(float(retention))
            # log ids are Redis's clock in ms: this host's real time, not a test's clock
            trim = ("MINID", "~", f"{int((time.time() - retention) * 1000)}-0")
        log = self.prefix + "log"
        commands = [("XADD", log, *trim, "*", "h", hostname, "r", f, "t", ttl) for f in frames]
        with self._errors("append events"):
            self.db.direct_execute(commands)

    def index_events(self, seconds: float) -> int:
        """See ``ResultBackend.index_events``.

        Raises:
            BackendError: Redis cannot be reached.
        """
        return self._catch_up(seconds)

    def history_lag(self) -> float:
        """See ``ResultBackend.history_lag``: the age of the first log entry past the index
        position (its id is Redis's clock in ms when it was appended).

        Raises:
            BackendError: Redis cannot be reached.
        """
        waiting = self.batches_after(self.index_position(), 1)
        if not waiting:
            return 0.0
        appended = int(waiting[0].position.partition("-")[0]) / 1000
        return max(0.0, time.time() - appended)

    def index_position(self) -> str:
        """See ``history_log.EventLog``.

        Raises:
            BackendError: Redis cannot be reached.
        """
        with self._errors("read the history's index position"):
            (position,) = self.db.direct_execute([("GET", self.prefix + "indexed")])
        return as_bytes(position).decode() if position is not None else ""

    def batches_after(self, position: str, count: int) -> list[LogBatch]:
        """See ``history_log.EventLog``.

        Raises:
            BackendError: Redis cannot be reached.
        """
        start = f"({position}" if position else "-"
        with self._errors("read the event log"):
            (found,) = self.db.direct_execute(
                [("XRANGE", self.prefix + "log", start, "+", "COUNT", count)]
            )
        return [_batch(raw_id, fields) for raw_id, fields in found]

    def index(self, after: str, batches: Sequence[LogBatch], events: Sequence[TaskEvent]) -> bool:
        """See ``history_log.EventLog``: one run of ``history_record.lua``.

        Raises:
            BackendError: Redis cannot be reached.
        """
        last = batches[-1]
        ttl = "" if last.retention is None else repr(float(last.retention))
        # The log keeps what was indexed for the feed's readers FEED_SECONDS longer.
        keep_from = min(int(last.position.partition("-")[0]), int(time.time() * 1000))
        log_start = f"{keep_from - int(FEED_SECONDS * 1000)}-0"
        events = recent(events, last.retention, self.clock())
        folded = fold(events)
        args: list[Arg] = [
            self._now(),
            ttl,
            self.prefix,
            log_start,
            PRUNE_LIMIT,
            after,
            last.position,
            len(folded),
        ]
        for task_id, f in folded.items():
            args += _task_args(task_id, f)
        seconds = stats_by_second(events)
        args.append(len(seconds))
        for second, stats in seconds.items():
            args += [second, *stats.as_tuple()]
        with self._errors("index the history"):
            return int(self.db.direct_execute([self._record.command([], args)])[0]) >= 0

    def history_task(self, task_id: str) -> TaskEntry | None:
        """See ``ResultBackend.history_task``.

        Raises:
            BackendError: Redis cannot be reached.
        """
        self._catch_up.before_read()
        with self._errors("read a task's history"):
            (flat,) = self.db.direct_execute([("HGETALL", self.prefix + "task:" + task_id)])
        if not flat:
            return None
        if isinstance(flat, dict):  # a RESP3 connection answers HGETALL with a map
            flat = [x for pair in flat.items() for x in pair]
        return _entry(task_id, flat, with_events=True)

    def history_tasks(self, query: TaskQuery) -> TaskPage:
        """See ``ResultBackend.history_tasks``.

        Raises:
            BackendError: Redis cannot be reached.
        """
        self._catch_up.before_read()
        p = self.prefix
        sets = [p + f"by-{f}:" + v for f in ("state", "name", "worker") if (v := getattr(query, f))]
        args: list[Arg] = [
            p,
            _bound(query.since, "-inf"),
            _bound(query.until, "+inf"),
            query.text or "",
            query.offset,
            query.limit,
            *(sets or [p + "all"]),
        ]
        with self._errors("search the history"):
            reply = self.db.direct_execute([self._query.command([], args)])[0]
        total, rest = int(reply[0]), reply[1:]
        tasks = [
            _entry(as_bytes(task_id).decode(), flat)
            for task_id, flat in zip(rest[::2], rest[1::2], strict=True)
        ]
        return TaskPage(tasks=tuple(tasks), total=total)

    def history_counts(self) -> dict[str, dict[str, int]]:
        """See ``ResultBackend.history_counts``.

        Raises:
            BackendError: Redis cannot be reached.
        """
        self._catch_up.before_read()
        with self._errors("count the history"):
            raw = self.db.direct().hgetall(self.prefix + "counts")
        counts: dict[str, dict[str, int]] = {}
        for field, value in raw.items():
            state, _, name = as_bytes(field).decode().partition("\n")
            if int(value) > 0:
                counts.setdefault(state, {})[name] = int(value)
        return counts

    def history_series(self, since: float, bucket: float) -> list[dict[str, Any]]:
        """See ``ResultBackend.history_series``.

        Raises:
            BackendError: Redis cannot be reached.
            ValueError: ``bucket`` is not positive.
        """
        self._catch_up.before_read()
        with self._errors("read the history's series"):
            found = self.db.direct_execute(
                [("ZRANGEBYSCORE", self.prefix + "seconds", int(since - bucket), "+inf")]
            )[0]
            values = self.db.execute([("HMGET", self.prefix + "stats", *found)])[0] if found else []
        seconds: dict[int, SecondStats] = {}
        for second, value in zip(found, values, strict=True):
            if value is not None:
                words = as_bytes(value).split()
                seconds[int(second)] = SecondStats(
                    succeeded=int(words[0]),
                    failed=int(words[1]),
                    retried=int(words[2]),
                    runtime_sum=float(words[3]),
                    runtime_count=int(words[4]),
                    runtime_max=float(words[5]),
                )
        return series(seconds, since, bucket, self.clock())

    def read_events(self, cursor: str | None, limit: int = 1000) -> tuple[list[TaskEvent], str]:
        """See ``ResultBackend.read_events``. A cursor is ``<stream id>/<events read of it>``
        (``all``: every one).

        Raises:
            BackendError: Redis cannot be reached.
        """
        log = self.prefix + "log"
        with self._errors("read events"):
            if cursor is None:
                newest = self.db.direct_execute([("XREVRANGE", log, "+", "-", "COUNT", 1)])[0]
                return [], (as_bytes(newest[0][0]).decode() if newest else "0-0") + "/all"
            entry, _, done_text = cursor.partition("/")
            command = ("XRANGE", log, entry, "+", "COUNT", limit + 1)
            found: list[Any] = self.db.direct_execute([command])[0]
        events: list[TaskEvent] = []
        for raw_id, fields in found:
            batch = _batch(raw_id, fields)
            chunk = frame_events(batch.frame, batch.hostname)
            start = 0
            if batch.position == entry:
                start = len(chunk) if done_text in ("all", "") else int(done_text)
            take = chunk[start : start + limit - len(events)]
            events += take
            cursor = f"{batch.position}/{start + len(take)}"
            if len(events) >= limit:
                break
        return events, cursor

    def record_worker(self, entry: WorkerEntry, *, ttl: float) -> None:
        """See ``ResultBackend.record_worker``.

        Raises:
            BackendError: Redis cannot be reached.
        """
        value = f"{self.clock() + ttl:.6f}\n{json.dumps(entry.to_dict())}"
        with self._errors("record a worker"):
            self.db.direct().hset(self.prefix + "workers", entry.hostname, value)

    def workers(self) -> list[WorkerEntry]:
        """See ``ResultBackend.workers``.

        Raises:
            BackendError: Redis cannot be reached.
        """
        key = self.prefix + "workers"
        now = self.clock()
        with self._errors("read the workers"):
            raw = self.db.direct().hgetall(key)
            live, gone = [], []
            for host, value in raw.items():
                expiry, _, text = as_bytes(value).decode().partition("\n")
                if float(expiry or 0) > now:
                    live.append(WorkerEntry.from_dict(json.loads(text)))
                else:
                    gone.append(host)
            if gone:
                self.db.direct().hdel(key, *gone)
        return sorted(live, key=lambda w: w.hostname)
