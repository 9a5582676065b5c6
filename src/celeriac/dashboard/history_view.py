"""What the dashboard shows from the task history and the workers: the task list, one task,
the overview's counts and series, and the workers (heartbeats joined with ``inspect``).

Every function returns JSON-ready values, so a page and its ``/api/`` twin show the same thing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac.dashboard.reading import hide_args
from celeriac.history import TaskEntry, TaskQuery
from celeriac.urls import mask_url

if TYPE_CHECKING:
    from celeriac.app import Celeriac

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class TaskFilters:
    """The task list's filters as a page or ``GET /api/tasks`` takes them (query strings);
    ``since`` and ``until`` are epoch seconds or ISO dates and times (UTC unless zoned)."""

    state: str = ""
    name: str = ""
    worker: str = ""
    since: float | None = None
    until: float | None = None
    text: str = ""
    page: int = 1
    size: int = PAGE_SIZE

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> TaskFilters:
        """The filters in a query string; bad numbers are ignored rather than refused."""
        return cls(
            state=params.get("state", "").strip().upper(),
            name=params.get("name", "").strip(),
            worker=params.get("worker", "").strip(),
            since=_number(params.get("since")),
            until=_number(params.get("until")),
            text=params.get("text", "").strip(),
            page=max(1, int(_number(params.get("page")) or 1)),
            size=min(MAX_PAGE_SIZE, max(1, int(_number(params.get("size")) or PAGE_SIZE))),
        )

    def query(self) -> TaskQuery:
        """The backend's query for these filters."""
        return TaskQuery(
            state=self.state or None,
            name=self.name or None,
            worker=self.worker or None,
            since=self.since,
            until=self.until,
            text=self.text or None,
            limit=self.size,
            offset=(self.page - 1) * self.size,
        )


def _number(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:  # a date and time, as a person types one: UTC unless it names its zone
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def entry_dict(app: Celeriac, entry: TaskEntry, *, timeline: bool = False) -> dict[str, Any]:
    """A task's history entry as JSON-ready values (arguments hidden when the setting says)."""
    hidden = hide_args(app)
    found: dict[str, Any] = {
        "id": entry.task_id,
        "name": entry.name,
        "state": entry.state,
        "args": "" if hidden else entry.args,
        "kwargs": "" if hidden else entry.kwargs,
        "result": entry.result,
        "exception": entry.exception,
        "traceback": entry.traceback,
        "retries": entry.retries,
        "worker": entry.worker,
        "queue": entry.queue,
        "parent_id": entry.parent_id,
        "root_id": entry.root_id,
        "group_id": entry.group_id,
        "children": list(entry.children),
        "sent": entry.sent,
        "received": entry.received,
        "started": entry.started,
        "finished": entry.finished,
        "runtime": entry.runtime,
        "progress": dict(entry.progress) if entry.progress is not None else None,
        "seen": entry.seen,
    }
    if timeline:
        found["events"] = [
            {"type": e.type, "timestamp": e.timestamp, "hostname": e.hostname} for e in entry.events
        ]
    return found


def task_list(app: Celeriac, filters: TaskFilters) -> dict[str, Any]:
    """One page of the task list: ``{tasks, total, page, size, pages, lag}``; ``lag``, the
    seconds the history's indexing is behind (``ResultBackend.history_lag``: 0 when it is up to
    date; a backlog, after a busy hour nobody watched, is indexed oldest first).

    Raises:
        BackendError: the backend cannot be reached.
    """
    found = app.backend.history_tasks(filters.query())
    pages = max(1, -(-found.total // filters.size))
    return {
        "tasks": [entry_dict(app, entry) for entry in found.tasks],
        "total": found.total,
        "page": filters.page,
        "size": filters.size,
        "pages": pages,
        "lag": round(app.backend.history_lag(), 1),
    }


def task_detail(app: Celeriac, task_id: str) -> dict[str, Any] | None:
    """One task with its timeline, or None when neither the history nor the result backend
    knows it. A task with a result but no history (history off, or expired) is shown from its
    result.

    Raises:
        BackendError: the backend cannot be reached.
    """
    entry = app.backend.history_task(task_id)
    if entry is not None:
        return entry_dict(app, entry, timeline=True)
    record = app.backend.get(task_id)
    if record is None:
        return None
    fallback = TaskEntry(
        task_id=task_id,
        name=str(record.meta.get("task") or record.meta.get("name") or ""),
        state=record.state,
        retries=record.retries,
        worker=str(record.meta.get("worker") or ""),
        finished=record.date_done,
    )
    return entry_dict(app, fallback, timeline=True)


def overview(app: Celeriac, *, window: float = 3600.0, bucket: float = 60.0) -> dict[str, Any]:
    """The overview: counts by state and by task, and the last ``window`` seconds in
    ``bucket``-second steps.

    Raises:
        BackendError: the backend cannot be reached.
    """
    counts = app.backend.history_counts()
    by_state = {state: sum(names.values()) for state, names in counts.items()}
    by_name: dict[str, int] = {}
    for names in counts.values():
        for name, count in names.items():
            by_name[name] = by_name.get(name, 0) + count
    workers = app.backend.workers()
    return {
        "states": dict(sorted(by_state.items())),
        "names": dict(sorted(by_name.items(), key=lambda kv: -kv[1])[:20]),
        "total": sum(by_state.values()),
        "series": app.backend.history_series(time.time() - window, bucket),
        "bucket": bucket,
        "workers_online": sum(1 for w in workers if w.online),
    }


def workers(app: Celeriac, *, timeout: float = 0.5) -> list[dict[str, Any]]:
    """Every worker that sent a heartbeat or answered ``inspect``: the heartbeat's figures,
    and ``stats`` and ``active`` where it answered within ``timeout`` seconds.

    Raises:
        BackendError, BrokerError: the stores cannot be reached.
    """
    found: dict[str, dict[str, Any]] = {w.hostname: w.to_dict() for w in app.backend.workers()}
    inspector = app.control.inspect(timeout=timeout)
    # Both questions at once: each waits up to ``timeout`` for the replies.
    with ThreadPoolExecutor(2) as pool:
        asked_stats, asked_active = pool.submit(inspector.stats), pool.submit(inspector.active)
        stats, active = asked_stats.result() or {}, asked_active.result() or {}
    hidden = hide_args(app)
    for hostname in sorted({*found, *stats, *active}):
        item = found.setdefault(hostname, {"hostname": hostname, "online": True})
        item["stats"] = _masked(stats.get(hostname))
        tasks = active.get(hostname) or []
        item["active_tasks"] = [_active(task, hidden) for task in tasks]
    return [found[name] for name in sorted(found)]


def _active(task: Mapping[str, Any], hidden: bool) -> dict[str, Any]:
    shown = {k: task.get(k) for k in ("id", "name", "time_start", "worker_pid")}
    shown["args"] = "" if hidden else repr(task.get("args"))
    shown["kwargs"] = "" if hidden else repr(task.get("kwargs"))
    return shown


def _masked(stats: Any) -> Any:
    """``stats`` with every URL in it masked (the workers mask theirs; this is the belt)."""
    if isinstance(stats, dict):
        return {k: _masked(v) for k, v in stats.items()}
    if isinstance(stats, list):
        return [_masked(v) for v in stats]
    if isinstance(stats, str) and "://" in stats:
        return mask_url(stats)
    return stats
