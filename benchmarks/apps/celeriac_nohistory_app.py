"""``celeriac_app``'s tasks with ``task_history = False``: the "off" side of
``benchmarks.history_cost`` (broker from ``$CELERIAC_BROKER_URL``, as ``celeriac_app``)."""

from __future__ import annotations

from celeriac import Celeriac

app = Celeriac("celeriac_app", task_history=False)


@app.task(name="celeriac_app.noop")
def noop() -> None:
    """Do nothing (the result, None, is still stored)."""


@app.task(name="celeriac_app.echo")
def echo(value: int) -> int:
    """Return the argument."""
    return value
