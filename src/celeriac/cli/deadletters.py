"""``celeriac deadletters``: the messages workers gave up on, and putting them back.

``list`` shows the newest first (tag, queue, when, task and id, reason); ``show TAG`` one of
them in full; ``requeue TAG...|--all [--queue Q]`` puts them back in their queue (or in Q) as
new messages; ``delete TAG...|--all`` drops them for good. The broker does the work
(``Broker.requeue_dead_letters``, ``delete_dead_letters``): this only parses and prints.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import click

from celeriac.app import Celeriac
from celeriac.brokers.base import DeadLetter
from celeriac.cli.common import app_of, one_line_errors
from celeriac.exceptions import CeleriacError
from celeriac.message import Message, decode_arguments
from celeriac.serialization import JSON

SCAN = 1_000_000  # dead letters read to find one by its tag


def _when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch).isoformat(sep=" ", timespec="seconds")


def describe(app: Celeriac, letter: DeadLetter, *, full: bool = False) -> dict[str, Any]:
    """A dead letter as JSON-ready fields: its task, id and (``full``) arguments when its bytes
    are a celeriac message."""
    shown: dict[str, Any] = {
        "tag": letter.tag,
        "queue": letter.queue,
        "reason": letter.reason,
        "dead_at": letter.dead_at,
        "task": None,
        "id": None,
    }
    try:
        message = Message.decode(letter.body)
    except CeleriacError:
        shown["body"] = letter.body.decode("utf-8", "replace")[:2000] if full else None
        return shown
    shown.update(task=message.task, id=message.id)
    if full:
        shown.update(retries=message.retries, sent_at=message.sent_at, parent_id=message.parent_id)
        if message.content_type == JSON:
            try:
                shown["args"], shown["kwargs"] = decode_arguments(
                    app.serializer, message.content_type, message.body
                )
            except CeleriacError:
                shown["args"], shown["kwargs"] = None, None
    return shown


@click.group()
def deadletters() -> None:
    """List, show, requeue or delete dead-lettered messages."""


@deadletters.command("list")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("-j", "--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@one_line_errors
def list_letters(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The newest dead letters first."""
    app = app_of(ctx)
    letters = [describe(app, d) for d in app.broker.dead_letters(limit)]
    if as_json:
        click.echo(json.dumps(letters, indent=2, default=str))
        return
    if not letters:
        click.echo("No dead letters.")
        return
    for d in letters:
        task = f"{d['task']}[{d['id']}]" if d["task"] else "(not a celeriac message)"
        click.echo(f"{d['tag']:>8}  {d['queue']}  {_when(d['dead_at'])}  {task}")
        click.echo(f"          {d['reason']}")
    click.echo(f"\n{len(letters)} dead letter{'s' if len(letters) != 1 else ''}.")


@deadletters.command()
@click.argument("tag")
@click.option("-j", "--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@one_line_errors
def show(ctx: click.Context, tag: str, as_json: bool) -> None:
    """One dead letter in full."""
    app = app_of(ctx)
    found = next((d for d in app.broker.dead_letters(SCAN) if d.tag == tag), None)
    if found is None:
        raise click.ClickException(f"no dead letter {tag!r}")
    shown = describe(app, found, full=True)
    if as_json:
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    for key, value in shown.items():
        if key in ("dead_at", "sent_at") and value:
            value = _when(value)
        elif key in ("args", "kwargs"):
            value = json.dumps(value, default=str)
        click.echo(f"{key + ':':<10} {value}")


def _chosen(tags: tuple[str, ...], every: bool) -> list[str] | None:
    if every == bool(tags):
        raise click.UsageError("name dead letters by their tags, or give --all (not both)")
    return None if every else list(tags)


def _count(n: int, what: str) -> str:
    return f"{what} {n} dead letter{'s' if n != 1 else ''}."


@deadletters.command()
@click.argument("tags", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every dead letter.")
@click.option("--queue", help="Into this queue (default: the one each died in).")
@click.pass_context
@one_line_errors
def requeue(ctx: click.Context, tags: tuple[str, ...], every: bool, queue: str | None) -> None:
    """Put dead letters back in their queue as new messages."""
    chosen = _chosen(tags, every)
    moved = app_of(ctx).broker.requeue_dead_letters(chosen, queue=queue)
    click.echo(_count(moved, "Requeued"))
    if chosen is not None and moved < len(chosen):
        raise click.ClickException(f"{len(chosen) - moved} of the tags named no dead letter")


@deadletters.command()
@click.argument("tags", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every dead letter.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation (--all).")
@click.pass_context
@one_line_errors
def delete(ctx: click.Context, tags: tuple[str, ...], every: bool, force: bool) -> None:
    """Delete dead letters for good."""
    chosen = _chosen(tags, every)
    if chosen is None and not force:
        click.confirm("Delete every dead letter?", abort=True)
    removed = app_of(ctx).broker.delete_dead_letters(chosen)
    click.echo(_count(removed, "Deleted"))
    if chosen is not None and removed < len(chosen):
        raise click.ClickException(f"{len(chosen) - removed} of the tags named no dead letter")
