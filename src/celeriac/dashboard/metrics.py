"""``GET /metrics``: Prometheus' text format (0.0.4), written here rather than with
``prometheus_client``, whose process-wide registry would outlive a test's app.

Gauges are read from the stores at each scrape: tasks of the history by state and name, queue
lengths, dead letters, workers online. The run-time histogram is cumulative, as Prometheus
wants: each scrape reads the live event feed from where the last one stopped and adds the
run times of the tasks that finished since, so it counts from the dashboard's start.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from celeriac.dashboard.reading import known_queues
from celeriac.history import FAILED, SUCCEEDED, TaskEvent

if TYPE_CHECKING:
    from celeriac.app import Celeriac

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
NAMES_KEPT = 100_000  # names of received tasks remembered until they end
DEAD_LETTER_CAP = 10_000  # dead letters counted at most per scrape
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RuntimeHistogram:
    """Run times of finished tasks, by task name, fed from the live event feed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cursor: str | None = None
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._names: OrderedDict[str, str] = OrderedDict()  # task id -> name, of running tasks

    def catch_up(self, app: Celeriac) -> None:
        """Read the events since the last call (none on the first: the feed starts now).

        Raises:
            BackendError: the backend cannot be reached.
        """
        with self._lock:
            while True:
                events, self._cursor = app.backend.read_events(self._cursor, limit=1000)
                for event in events:
                    self._take(app, event)
                if len(events) < 1000:
                    return

    def _take(self, app: Celeriac, event: TaskEvent) -> None:
        # As in Celery, only task-received names the task: the ending events are matched to it.
        if event.fields.get("name"):
            self._names[event.task_id] = str(event.fields["name"])
            while len(self._names) > NAMES_KEPT:
                self._names.popitem(last=False)
        runtime = event.fields.get("runtime")
        if event.type not in (SUCCEEDED, FAILED) or runtime is None:
            return
        name = self._names.pop(event.task_id, None)
        if name is None:  # received before the feed was first read
            entry = app.backend.history_task(event.task_id)
            name = entry.name if entry is not None else ""
        self._observe(name, float(runtime))

    def _observe(self, name: str, seconds: float) -> None:
        counts = self._counts.setdefault(name, [0] * (len(BUCKETS) + 1))
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                counts[i] += 1
        counts[-1] += 1
        self._sums[name] = self._sums.get(name, 0.0) + seconds

    def lines(self) -> Iterable[str]:
        """The histogram in the text format."""
        metric = "celeriac_task_runtime_seconds"
        yield f"# HELP {metric} Run time of tasks that finished since the dashboard started."
        yield f"# TYPE {metric} histogram"
        with self._lock:
            for name, counts in sorted(self._counts.items()):
                label = f'name="{_escape(name)}"'
                for bound, count in zip(BUCKETS, counts, strict=False):
                    yield f'{metric}_bucket{{{label},le="{bound}"}} {count}'
                yield f'{metric}_bucket{{{label},le="+Inf"}} {counts[-1]}'
                yield f"{metric}_sum{{{label}}} {self._sums[name]}"
                yield f"{metric}_count{{{label}}} {counts[-1]}"


def render(app: Celeriac, histogram: RuntimeHistogram) -> str:
    """Every metric, as the body of ``GET /metrics``.

    Raises:
        BackendError, BrokerError: the stores cannot be reached.
    """
    histogram.catch_up(app)
    lines = [
        "# HELP celeriac_tasks Tasks in the history, by state and task name.",
        "# TYPE celeriac_tasks gauge",
    ]
    for state, names in sorted(app.backend.history_counts().items()):
        for name, count in sorted(names.items()):
            lines.append(
                f'celeriac_tasks{{state="{_escape(state)}",name="{_escape(name)}"}} {count}'
            )
    lines += list(histogram.lines())
    workers = app.backend.workers()
    queues = {q for w in workers for q in w.queues}
    lines += [
        "# HELP celeriac_queue_length Messages in a queue (ready, delayed and leased).",
        "# TYPE celeriac_queue_length gauge",
    ]
    lengths = app.broker.queue_lengths(known_queues(app, sorted(queues)))
    lines += [
        f'celeriac_queue_length{{queue="{_escape(q)}"}} {n}' for q, n in sorted(lengths.items())
    ]
    lines += [
        "# HELP celeriac_dead_letters Messages in the dead-letter store.",
        "# TYPE celeriac_dead_letters gauge",
        f"celeriac_dead_letters {len(app.broker.dead_letters(DEAD_LETTER_CAP))}",
        "# HELP celeriac_workers_online Workers whose heartbeat has not expired.",
        "# TYPE celeriac_workers_online gauge",
        f"celeriac_workers_online {sum(1 for w in workers if w.online)}",
    ]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
