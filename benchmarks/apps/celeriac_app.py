"""The celeriac side's tasks: the worker runs ``celeriac -A celeriac_app worker`` in this folder.

The worker's app takes its broker (and result store: the same SQLite file) from
``$CELERIAC_BROKER_URL``. The benchmark process imports this module by the same name and builds
one client app per database file with ``create``.
"""

from __future__ import annotations

from dataclasses import dataclass

from celeriac import Celeriac, Task

NOOP = "celeriac_app.noop"
ECHO = "celeriac_app.echo"


def noop() -> None:
    """Do nothing (the result, None, is still stored)."""


def echo(value: int) -> int:
    """Return the argument, so a round trip can be checked."""
    return value


@dataclass(frozen=True)
class Bench:
    """An app and its two tasks."""

    app: Celeriac
    noop: Task[[], None]
    echo: Task[[int], int]


def create(broker_url: str | None = None) -> Bench:
    """An app on ``broker_url`` (default: ``$CELERIAC_BROKER_URL``) with the benchmark tasks."""
    app = Celeriac("celeriac_app", broker=broker_url)
    return Bench(app, app.task(name=NOOP)(noop), app.task(name=ECHO)(echo))


app = create().app
