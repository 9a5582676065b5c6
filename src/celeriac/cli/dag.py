"""``celeriac dag list``, ``dag status RUN_ID`` and ``dag retry RUN_ID [--node NAME]``: DAG
runs from any machine.

They read the runs' records in the result backend (``list``: its index of recent runs,
``canvas/dag_index.py``), so they work wherever the backend is reachable.
"""

from __future__ import annotations

import sys
import time

import click

from celeriac.canvas.dag import DagRun, NodeStatus
from celeriac.canvas.dag_index import RUNS_KEPT, recent_runs
from celeriac.cli.common import app_of
from celeriac.exceptions import CeleriacError


def _run(ctx: click.Context, run_id: str) -> DagRun:
    return DagRun(run_id, app_of(ctx))


def _nodes_table(nodes: list[NodeStatus]) -> list[str]:
    rows: list[tuple[str, ...]] = [("NODE", "STATE", "ATTEMPT", "TASK ID", "AFTER")]
    rows += [(n.name, n.state, str(n.attempt), n.task_id, ",".join(n.parents)) for n in nodes]
    return _table(rows)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
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
    for line in _nodes_table(nodes):
        click.echo(line)
    if state == "FAILURE":
        sys.exit(1)


@dag.command("list")
@click.option(
    "--limit",
    type=click.IntRange(1, RUNS_KEPT),
    default=20,
    show_default=True,
    help="How many runs, newest first.",
)
@click.pass_context
def list_runs(ctx: click.Context, limit: int) -> None:
    """Print the newest DAG runs: when, id, name, state and node states."""
    try:
        runs = recent_runs(app_of(ctx), limit)
    except CeleriacError as exc:
        raise click.ClickException(str(exc)) from None
    rows: list[tuple[str, ...]] = [("CREATED", "RUN ID", "NAME", "STATE", "NODES")]
    for run in runs:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created))
        counts = ",".join(f"{state}={n}" for state, n in sorted(run.counts.items()))
        rows.append((created, run.id, run.name, run.state, counts))
    for line in _table(rows):
        click.echo(line)


@dag.command()
@click.argument("run_id")
@click.option(
    "--node",
    "nodes",
    multiple=True,
    metavar="NAME",
    help="Retry only this failed node (and what did not run because of it); repeatable.",
)
@click.pass_context
def retry(ctx: click.Context, run_id: str, nodes: tuple[str, ...]) -> None:
    """Run the failed nodes of run RUN_ID again (or only those given with --node); what
    succeeded is not run again."""
    try:
        retried = _run(ctx, run_id).retry_failed(list(nodes) if nodes else None)
    except CeleriacError as exc:
        raise click.ClickException(str(exc)) from None
    if not retried:
        click.echo(f"run {run_id}: no failed nodes")
        return
    click.echo(f"run {run_id}: retrying {', '.join(retried)}")
