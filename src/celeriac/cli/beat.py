"""``celeriac beat`` and ``celeriac schedule ...``: thin commands over ``celeriac.beat``."""

from __future__ import annotations

import datetime as dt
import logging

import click

from celeriac.app import Celeriac
from celeriac.beat import BeatOptions, ScheduleControl, run_beat
from celeriac.cli.common import app_of, one_line_errors
from celeriac.cli.logs import LEVELS, setup_logging

log = logging.getLogger("celeriac.beat")
SCHEDULE_FILE = (
    "-s/--schedule {value}: not needed: beat keeps its schedule and its state (the last run of "
    "each entry) in the result backend, shared by every beat, not in a file"
)
SCHEDULER = (
    "-S/--scheduler {value}: beat runs celeriac's own scheduler, whose schedule lives in the "
    "result backend (beat_schedule, add_periodic_task, `celeriac schedule`); the class is not "
    "used"
)


def _app(ctx: click.Context) -> Celeriac:
    app = app_of(ctx)
    app.import_task_modules()
    return app


@click.command()
@click.option(
    "-l", "--loglevel", default="WARNING", type=click.Choice(LEVELS, case_sensitive=False)
)
@click.option(
    "--max-interval", type=click.FloatRange(min=0.05), help="Seconds between looks at the schedule."
)
@click.option(
    "-s", "--schedule", "schedule_file", help="Accepted: the schedule lives in the result backend."
)
@click.option("-S", "--scheduler", help="Accepted: celeriac's scheduler is used.")
@click.pass_context
@one_line_errors
def beat(
    ctx: click.Context,
    loglevel: str,
    max_interval: float | None,
    schedule_file: str | None,
    scheduler: str | None,
) -> None:
    """Send the app's periodic tasks when they are due (run as many as you like)."""
    app = _app(ctx)  # first: its setup_logging receivers decide how logging is set up
    setup_logging(loglevel)
    if schedule_file is not None:
        log.info("%s", SCHEDULE_FILE.format(value=schedule_file))
    if scheduler is not None:
        log.warning("%s", SCHEDULER.format(value=scheduler))
    run_beat(app, BeatOptions(max_interval=max_interval))


@click.group()
def schedule() -> None:
    """List the periodic schedule, or change it while beat runs."""


def _when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "-"


@schedule.command("list")
@click.pass_context
@one_line_errors
def list_entries(ctx: click.Context) -> None:
    """Show every entry: schedule, task, state, last and next run."""
    statuses = ScheduleControl(_app(ctx)).entries()
    if not statuses:
        click.echo("No schedule entries.")
        return
    rows = [("NAME", "SCHEDULE", "TASK", "STATE", "LAST RUN", "NEXT RUN")]
    rows += [
        (
            s.name,
            s.schedule,
            s.target,
            "paused" if s.paused else "active",
            _when(s.last_run),
            _when(s.next_run),
        )
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@schedule.command()
@click.argument("name")
@click.pass_context
@one_line_errors
def pause(ctx: click.Context, name: str) -> None:
    """Stop sending the fires of entry NAME."""
    ScheduleControl(_app(ctx)).pause(name)
    click.echo(f"Paused {name}.")


@schedule.command()
@click.argument("name")
@click.pass_context
@one_line_errors
def resume(ctx: click.Context, name: str) -> None:
    """Send the fires of entry NAME again, from its next one."""
    ScheduleControl(_app(ctx)).resume(name)
    click.echo(f"Resumed {name}.")


@schedule.command()
@click.argument("name")
@click.pass_context
@one_line_errors
def run(ctx: click.Context, name: str) -> None:
    """Send one fire of entry NAME now, and print its task id."""
    click.echo(ScheduleControl(_app(ctx)).run(name))


@schedule.command()
@click.argument("name")
@click.pass_context
@one_line_errors
def remove(ctx: click.Context, name: str) -> None:
    """Remove entry NAME (one added at run time)."""
    ScheduleControl(_app(ctx)).remove(name)
    click.echo(f"Removed {name}.")
