"""``celeriac dag status RUN_ID`` and ``celeriac dag retry RUN_ID``: DAG runs from any machine.

Both read the run's record in the result backend, so they work wherever the backend is reachable.
"""

from __future__ import annotations

import sys

import click

from celeriac.canvas.dag import DagRun, NodeStatus
from celeriac.cli.common import app_of
from celeriac.exceptions import CeleriacError


def _run(ctx: click.Context, run_id: str) -> DagRun:
    return DagRun(run_id, app_of(ctx))


def _table(nodes: list[NodeStatus]) -> list[str]:
    rows = [("NODE", "STATE", "ATTEMPT", "TASK ID", "AFTER")]
    rows += [(n.name, n.state, str(n.attempt), n.task_id, ",".join(n.parents)) for n in nodes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


@click.group()
def dag() -> None:
    """Inspect and retry DAG runs."""


@dag.command()
@click.argument("run_id")
@click.pass_context
def status(ctx: click.Context, run_id: str) -> None:
    """Print the state of every node of run RUN_ID (exit status 1 if the run failed)."""
    try:
        run = _run(ctx, run_id)
        document, nodes = run.document(), run.status()
        state = run.state()
    except CeleriacError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"run {run_id} ({document.get('name')}): {state}")
    for line in _table(nodes):
        click.echo(line)
    if state == "FAILURE":
        sys.exit(1)


@dag.command()
@click.argument("run_id")
@click.pass_context
def retry(ctx: click.Context, run_id: str) -> None:
    """Run the failed nodes of run RUN_ID again; what succeeded is not run again."""
    try:
        retried = _run(ctx, run_id).retry_failed()
    except CeleriacError as exc:
        raise click.ClickException(str(exc)) from None
    if not retried:
        click.echo(f"run {run_id}: no failed nodes")
        return
    click.echo(f"run {run_id}: retrying {', '.join(retried)}")
