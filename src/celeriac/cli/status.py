"""``celeriac status``: the workers online, as Celery's ``status`` shows them (those that
answer a ping within the timeout)."""

from __future__ import annotations

import click

from celeriac.cli.common import app_of, one_line_errors
from celeriac.cli.inspect import destination_option, destinations, echo_replies


@click.command()
@destination_option
@click.pass_context
@one_line_errors
def status(ctx: click.Context, destination: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """Show the workers online (those that answer a ping)."""
    app = app_of(ctx)
    replies = app.control.inspect(destination=destinations(destination), timeout=timeout).ping()
    echo_replies(replies, as_json, None)
