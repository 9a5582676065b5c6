"""``celeriac control``: commands to the running workers, as Celery's ``control``.

Each subcommand is one ``app.control`` call with ``reply=True``, and prints the answers::

    ->  w1@host: OK
            new rate limit set successfully

(``--json``: ``{hostname: answer}``). When no worker answers within the timeout, it says so and
exits with status 1; the command was sent all the same (a revocation is kept for workers that
start later).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from celeriac.app import Celeriac
from celeriac.cli.common import app_of, one_line_errors
from celeriac.cli.inspect import destination_option, destinations, echo_replies, show_status


def _send(
    ctx: click.Context,
    call: Callable[[Celeriac, dict[str, Any]], list[dict[str, Any]] | None],
    destination: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    app = app_of(ctx)
    where = {"destination": destinations(destination), "reply": True, "timeout": timeout}
    replies = call(app, where) or []
    merged = {host: answer for reply in replies for host, answer in reply.items()}
    echo_replies(merged, as_json, show_status)


@click.group()
def control() -> None:
    """Send a command to the running workers."""


@control.command()
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--terminate", is_flag=True, help="Also kill the task if it runs (prefork).")
@click.option("-s", "--signal", default="SIGTERM", show_default=True, help="Signal to kill with.")
@destination_option
@click.pass_context
@one_line_errors
def revoke(
    ctx: click.Context,
    task_ids: tuple[str, ...],
    terminate: bool,
    signal: str,
    destination: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Revoke tasks TASK_IDS: they will not run (with --terminate: killed if running)."""
    _send(
        ctx,
        lambda app, w: app.control.revoke(list(task_ids), terminate=terminate, signal=signal, **w),
        destination,
        timeout,
        as_json,
    )


@control.command()
@click.argument("task_ids", nargs=-1, required=True)
@click.option("-s", "--signal", default="SIGTERM", show_default=True, help="Signal to kill with.")
@destination_option
@click.pass_context
@one_line_errors
def terminate(
    ctx: click.Context,
    task_ids: tuple[str, ...],
    signal: str,
    destination: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Revoke tasks TASK_IDS and kill them where they run (prefork pool)."""
    _send(
        ctx,
        lambda app, w: app.control.terminate(list(task_ids), signal, **w),
        destination,
        timeout,
        as_json,
    )


@control.command("rate_limit")
@click.argument("task_name")
@click.argument("rate")
@destination_option
@click.pass_context
@one_line_errors
def rate_limit(
    ctx: click.Context,
    task_name: str,
    rate: str,
    destination: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Set TASK_NAME's rate limit to RATE (10/s, 100/m, 1000/h; 0 for none)."""
    limit: str | None = None if rate in ("0", "none", "None") else rate
    _send(
        ctx,
        lambda app, w: app.control.rate_limit(task_name, limit, **w),
        destination,
        timeout,
        as_json,
    )


@control.command("time_limit")
@click.argument("task_name")
@click.argument("soft", type=float)
@click.argument("hard", type=float, required=False)
@destination_option
@click.pass_context
@one_line_errors
def time_limit(
    ctx: click.Context,
    task_name: str,
    soft: float,
    hard: float | None,
    destination: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Set TASK_NAME's soft time limit to SOFT seconds (and its hard one to HARD)."""
    _send(
        ctx,
        lambda app, w: app.control.time_limit(task_name, soft, hard, **w),
        destination,
        timeout,
        as_json,
    )


@control.command()
@destination_option
@click.pass_context
@one_line_errors
def shutdown(
    ctx: click.Context, destination: tuple[str, ...], timeout: float, as_json: bool
) -> None:
    """Stop the workers warm (running tasks finish)."""
    _send(ctx, lambda app, w: app.control.shutdown(**w), destination, timeout, as_json)


@control.command("pool_grow")
@click.argument("n", type=click.IntRange(min=1), default=1)
@destination_option
@click.pass_context
@one_line_errors
def pool_grow(
    ctx: click.Context, n: int, destination: tuple[str, ...], timeout: float, as_json: bool
) -> None:
    """Add N processes to each worker's pool."""
    _send(ctx, lambda app, w: app.control.pool_grow(n, **w), destination, timeout, as_json)


@control.command("pool_shrink")
@click.argument("n", type=click.IntRange(min=1), default=1)
@destination_option
@click.pass_context
@one_line_errors
def pool_shrink(
    ctx: click.Context, n: int, destination: tuple[str, ...], timeout: float, as_json: bool
) -> None:
    """Remove up to N idle processes from each worker's pool."""
    _send(ctx, lambda app, w: app.control.pool_shrink(n, **w), destination, timeout, as_json)


@control.command("add_consumer")
@click.argument("queue")
@destination_option
@click.pass_context
@one_line_errors
def add_consumer(
    ctx: click.Context, queue: str, destination: tuple[str, ...], timeout: float, as_json: bool
) -> None:
    """Make the workers fetch from QUEUE too."""
    _send(ctx, lambda app, w: app.control.add_consumer(queue, **w), destination, timeout, as_json)


@control.command("cancel_consumer")
@click.argument("queue")
@destination_option
@click.pass_context
@one_line_errors
def cancel_consumer(
    ctx: click.Context, queue: str, destination: tuple[str, ...], timeout: float, as_json: bool
) -> None:
    """Make the workers stop fetching from QUEUE."""
    _send(
        ctx, lambda app, w: app.control.cancel_consumer(queue, **w), destination, timeout, as_json
    )
