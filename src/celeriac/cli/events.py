"""``celeriac events``: the task events that workers record, live, one line each (as Celery's
``celery events --dump``); ``--json`` prints each event as a JSON object on its own line."""

from __future__ import annotations

import json

import click

from celeriac.cli.common import app_of, one_line_errors
from celeriac.events import describe


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many events.")
@click.option("--timeout", type=float, help="Stop after this many seconds.")
@click.option("--dump", is_flag=True, help="Accepted (Celery's): this is what it does.")
@click.pass_context
@one_line_errors
def events(
    ctx: click.Context, as_json: bool, limit: int | None, timeout: float | None, dump: bool
) -> None:
    """Print task events as workers record them (from now on), until Ctrl-C."""
    app = app_of(ctx)
    receiver = app.events.Receiver()
    try:
        for event in receiver.itercapture(limit=limit, timeout=timeout):
            line = json.dumps(event.to_dict(), default=str) if as_json else describe(event)
            click.echo(line)
    except KeyboardInterrupt:
        pass
