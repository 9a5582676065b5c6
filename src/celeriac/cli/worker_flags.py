"""Celery's deployment flags of ``celery worker``, accepted by ``celeriac worker``.

Each does what it says (``--autoscale``, ``--time-limit``, ``--soft-time-limit``, ``--purge``,
``-X``, ``-I``), or is accepted with one line in the log saying why nothing needs doing
(``--without-gossip``, ``--without-mingle``, ``--without-heartbeat``, ``-O fair``, ...) or that
it is not there yet (``-E``): a flag is never ignored in silence.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

import click

from celeriac.exceptions import ConfigurationError
from celeriac.worker.autoscale import parse_autoscale

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("celeriac.worker")

GOSSIP = (
    "--without-gossip: celeriac workers do not gossip (no events between workers): "
    "nothing to turn off"
)
MINGLE = (
    "--without-mingle: celeriac workers do not mingle at start-up: each reads the revocations "
    "from the broker's control log (kept a day) instead"
)
HEARTBEAT = (
    "{flag}: a celeriac worker stores its heartbeat in the result backend every 2 s, for "
    "monitors (task_history = False turns it off); the leases it renews while tasks run tell "
    "a live worker from a dead one"
)
FAIR = (
    "-O {value}: a celeriac worker takes a message only for a free process (or one finishing a "
    "short task), so dispatch is already fair"
)
EVENTS = (
    "-E/--task-events: not needed: celeriac workers always record task events in the result "
    "backend (task_history = False turns them off)"
)
STATEDB = (
    "--statedb: not needed: revoked task ids live in the broker's control log, kept a day, which "
    "every worker reads at start-up"
)
SCHEDULE = (
    "--schedule-filename: beat keeps its schedule and its state in the result backend, not in a "
    "file"
)
SCHEDULER = (
    "--scheduler {value}: beat runs celeriac's own scheduler, whose schedule lives in the result "
    "backend (beat_schedule, add_periodic_task, `celeriac schedule`); the class is not used"
)


@dataclass(frozen=True)
class WorkerFlags:
    """The Celery flags given to ``worker``: the options they set, and the lines to log."""

    autoscale: tuple[int, int] | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    purge: bool = False
    exclude_queues: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    notes: tuple[tuple[int, str], ...] = ()

    def worker_options(self) -> dict[str, Any]:
        """The ``WorkerOptions`` fields these flags set."""
        return {
            "autoscale": self.autoscale,
            "time_limit": self.time_limit,
            "soft_time_limit": self.soft_time_limit,
            "purge": self.purge,
            "exclude_queues": self.exclude_queues,
        }

    def import_modules(self) -> None:
        """Import the ``-I`` modules (their tasks register with the app).

        Raises:
            ConfigurationError: a module that does not import.
        """
        for name in self.include:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise ConfigurationError(f"-I/--include {name!r} does not import: {exc}") from exc

    def log_notes(self) -> None:
        """Log each accepted flag's line, once."""
        for level, text in self.notes:
            log.log(level, "%s", text)


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _autoscale(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_autoscale(value)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc)) from None


def _notes(flags: dict[str, Any]) -> tuple[tuple[int, str], ...]:
    notes: list[tuple[int, str]] = []
    if flags["without_gossip"]:
        notes.append((logging.INFO, GOSSIP))
    if flags["without_mingle"]:
        notes.append((logging.INFO, MINGLE))
    if flags["without_heartbeat"]:
        notes.append((logging.INFO, HEARTBEAT.format(flag="--without-heartbeat")))
    if flags["heartbeat_interval"] is not None:
        notes.append((logging.INFO, HEARTBEAT.format(flag="--heartbeat-interval")))
    if flags["optimization"] is not None:
        notes.append((logging.INFO, FAIR.format(value=flags["optimization"])))
    if flags["task_events"]:
        notes.append((logging.INFO, EVENTS))
    if flags["statedb"] is not None:
        notes.append((logging.INFO, STATEDB))
    if flags["schedule_filename"] is not None:
        notes.append((logging.INFO, SCHEDULE))
    if flags["scheduler"] is not None:
        notes.append((logging.WARNING, SCHEDULER.format(value=flags["scheduler"])))
    return tuple(notes)


_NOTED = (
    "without_gossip",
    "without_mingle",
    "without_heartbeat",
    "heartbeat_interval",
    "optimization",
    "task_events",
    "statedb",
    "schedule_filename",
    "scheduler",
)


def worker_flags(fn: F) -> F:
    """Add Celery's deployment flags to a command, passed to it as one ``flags: WorkerFlags``
    argument; see the module docstring."""

    @click.option(
        "--autoscale",
        metavar="MAX,MIN",
        callback=_autoscale,
        help=(
            "Grow the pool up to MAX processes (-P asyncio: slots) while work waits; "
            "shrink back to MIN."
        ),
    )
    @click.option(
        "--time-limit",
        type=click.FloatRange(min=0, min_open=True),
        help="Default hard time limit of tasks, in seconds (task_time_limit).",
    )
    @click.option(
        "--soft-time-limit",
        type=click.FloatRange(min=0, min_open=True),
        help="Default soft time limit of tasks, in seconds (task_soft_time_limit).",
    )
    @click.option(
        "--purge",
        "--discard",
        "purge",
        is_flag=True,
        help="Delete every waiting message of the worker's queues first.",
    )
    @click.option(
        "-X",
        "--exclude-queues",
        default="",
        help="Comma-separated queues not to consume (of task_queues).",
    )
    @click.option("-I", "--include", default="", help="Comma-separated modules to import.")
    @click.option("--without-gossip", is_flag=True, help="Accepted: celeriac does not gossip.")
    @click.option("--without-mingle", is_flag=True, help="Accepted: celeriac does not mingle.")
    @click.option("--without-heartbeat", is_flag=True, help="Accepted: leases replace it.")
    @click.option("--heartbeat-interval", type=float, help="Accepted: leases replace it.")
    @click.option(
        "-O",
        "optimization",
        type=click.Choice(["default", "fair"]),
        help="Accepted: dispatch is always fair.",
    )
    @click.option("-E", "--task-events", is_flag=True, help="Accepted: events are always on.")
    @click.option("-S", "--statedb", help="Accepted: revocations live in the broker.")
    @click.option(
        "-s",
        "--schedule-filename",
        "--schedule",
        "schedule_filename",
        help="Accepted (-B): the schedule lives in the result backend.",
    )
    @click.option("--scheduler", help="Accepted (-B): celeriac's scheduler is used.")
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        noted = {name: kwargs.pop(name) for name in _NOTED}
        flags = WorkerFlags(
            autoscale=kwargs.pop("autoscale"),
            time_limit=kwargs.pop("time_limit"),
            soft_time_limit=kwargs.pop("soft_time_limit"),
            purge=kwargs.pop("purge"),
            exclude_queues=_split(kwargs.pop("exclude_queues")),
            include=_split(kwargs.pop("include")),
            notes=_notes(noted),
        )
        return fn(*args, flags=flags, **kwargs)

    return wrapper  # type: ignore[return-value]
