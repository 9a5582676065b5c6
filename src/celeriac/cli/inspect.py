"""``celeriac inspect``: ask the running workers what they hold and know.

Each subcommand is one ``app.control.inspect()`` call, printed as Celery prints it::

    ->  w1@host: OK
        * jobs.add[3f2c...] args=[2, 2] kwargs={} pid=4242 started 1.2s ago

and ``\\n1 node online.``; ``--json`` prints ``{hostname: answer}`` as JSON instead. When no
worker answers within the timeout: ``Error: No nodes replied within time constraint.`` and exit
status 1, as Celery's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import click

from celeriac.cli.common import app_of, one_line_errors
from celeriac.control import Inspect

NO_REPLY = "No nodes replied within time constraint."


def destination_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``-d/--destination`` (repeatable, or comma-separated), ``-t/--timeout``, ``-j/--json``."""
    fn = click.option("-j", "--json", "as_json", is_flag=True, help="Print JSON.")(fn)
    fn = click.option(
        "-t", "--timeout", type=float, default=1.0, show_default=True, help="Seconds to wait."
    )(fn)
    return click.option(
        "-d", "--destination", multiple=True, metavar="NODE", help="Only these workers."
    )(fn)


def destinations(values: tuple[str, ...]) -> list[str] | None:
    """The node names given to ``-d`` (None: every worker)."""
    names = [n.strip() for value in values for n in value.split(",") if n.strip()]
    return names or None


def echo_replies(
    replies: dict[str, Any] | None, as_json: bool, show: Callable[[Any], list[str]] | None
) -> None:
    """Print ``{hostname: answer}`` as Celery does (or as JSON); exit 1 when it is empty.
    ``show`` gives an answer's lines (None: the hostnames alone).

    Raises:
        click.ClickException: no worker replied.
    """
    if not replies:
        raise click.ClickException(NO_REPLY)
    if as_json:
        click.echo(json.dumps(replies, indent=2, sort_keys=True, default=str))
        return
    for host in sorted(replies):
        answer = replies[host]
        failed = isinstance(answer, dict) and "error" in answer
        status = click.style("ERROR", fg="red") if failed else click.style("OK", fg="green")
        click.echo(f"->  {host}: {status}", color=_color())
        lines = [] if show is None else show(answer) or ["- empty -"]
        for line in lines:
            click.echo(f"    {line}")
    count = len(replies)
    click.echo(f"\n{count} node{'s' if count != 1 else ''} online.")


def _color() -> bool | None:
    """False with ``--no-color``; else None: colour on a terminal only (click's choice)."""
    ctx = click.get_current_context(silent=True)
    state = ctx.find_root().obj if ctx is not None else None
    return False if isinstance(state, dict) and state.get("no_color") else None


def show_status(answer: Any) -> list[str]:
    """A command's answer: its ``ok`` or ``error`` text."""
    if isinstance(answer, dict) and len(answer) == 1 and {"ok", "error"} & set(answer):
        return [f"    {next(iter(answer.values()))}"]
    return [f"    {answer}"]


def show_request(request: dict[str, Any]) -> str:
    """One held task, on one line."""
    line = (
        f"* {request.get('name')}[{request.get('id')}] args={request.get('args')!r}"
        f" kwargs={request.get('kwargs')!r}"
    )
    if request.get("worker_pid"):
        line += f" pid={request['worker_pid']}"
    started = request.get("time_start")
    if isinstance(started, int | float):
        line += f" started {max(0.0, time.time() - started):.1f}s ago"
    return line


def show_requests(answer: Any) -> list[str]:
    """A list of held tasks."""
    return [show_request(r) if isinstance(r, dict) else f"* {r}" for r in answer or []]


def show_items(answer: Any) -> list[str]:
    """A list of names or ids."""
    return [f"* {item}" for item in answer or []]


def show_queues(answer: Any) -> list[str]:
    """The queues a worker fetches from."""
    return [
        f"* {q.get('name')} (exchange {q.get('exchange', {}).get('name')},"
        f" routing key {q.get('routing_key')})"
        for q in answer or []
    ]


def show_json(answer: Any) -> list[str]:
    """Any value, as indented JSON."""
    return json.dumps(answer, indent=4, sort_keys=True, default=str).splitlines()


SHOWN: dict[str, tuple[Callable[[Inspect], dict[str, Any] | None], Callable[[Any], list[str]]]] = {
    "active": (lambda i: i.active(), show_requests),
    "reserved": (lambda i: i.reserved(), show_requests),
    "scheduled": (lambda i: i.scheduled(), show_requests),
    "registered": (lambda i: i.registered(), show_items),
    "stats": (lambda i: i.stats(), show_json),
    "revoked": (lambda i: i.revoked(), show_items),
    "active_queues": (lambda i: i.active_queues(), show_queues),
    "ping": (lambda i: i.ping(), show_status),
}


@click.command()
@click.argument("method", type=click.Choice(sorted(SHOWN)))
@destination_option
@click.pass_context
@one_line_errors
def inspect(
    ctx: click.Context,
    method: str,
    destination: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Ask the running workers: active, reserved, scheduled, registered, stats, revoked,
    active_queues or ping."""
    app = app_of(ctx)
    asking = app.control.inspect(destination=destinations(destination), timeout=timeout)
    ask, show = SHOWN[method]
    echo_replies(ask(asking), as_json, show)
