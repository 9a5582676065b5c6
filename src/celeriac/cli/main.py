"""The ``celeriac`` command: click parses, the library does the work.

Every command resolves ``-A module[:app]`` once. Any celeriac error (a bad URL, an unknown
setting, a module that does not import) ends the command with one line on stderr and exit
status 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys

import click

from celeriac import Celeriac, __version__
from celeriac.beat import embedded_beat
from celeriac.cli.beat import beat as beat_command
from celeriac.cli.beat import schedule as schedule_command
from celeriac.cli.common import app_of, json_argument, one_line_errors
from celeriac.cli.daemon import DaemonOptions, daemon_options, daemonize, with_settings
from celeriac.cli.dag import dag as dag_command
from celeriac.cli.dashboard import dashboard as dashboard_command
from celeriac.cli.deadletters import deadletters
from celeriac.cli.events import events as events_command
from celeriac.cli.inspect import inspect as inspect_command
from celeriac.cli.logs import LEVELS, setup_logging
from celeriac.cli.multi import multi
from celeriac.cli.remote import control as control_command
from celeriac.cli.status import status as status_command
from celeriac.cli.worker_flags import WorkerFlags, worker_flags
from celeriac.exceptions import ConfigurationError
from celeriac.worker import POOLS, Worker, WorkerOptions
from celeriac.worker.banner import banner


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-A", "--app", "reference", metavar="MODULE[:APP]", help="Where the app is.")
@click.option("-b", "--broker", help="Broker URL (overrides the app's broker_url).")
@click.option("--result-backend", "backend", help="Result backend URL.")
@click.option("--config", metavar="MODULE", help="Load settings from this module too.")
@click.option("--workdir", type=click.Path(file_okay=False), help="Change to this folder first.")
@click.option("-q", "--quiet", is_flag=True, help="No start-up banner.")
@click.option("--no-color", is_flag=True, help="No colour (there is none off a terminal anyway).")
@click.option("--skip-checks", is_flag=True, help="Accepted: celeriac runs no Django checks.")
@click.option("--loader", help="Accepted for Celery's sake: not used (one line says so).")
@click.version_option(__version__, prog_name="celeriac")
@click.pass_context
def cli(
    ctx: click.Context,
    reference: str | None,
    broker: str | None,
    backend: str | None,
    config: str | None,
    workdir: str | None,
    quiet: bool,
    no_color: bool,
    skip_checks: bool,
    loader: str | None,
) -> None:
    """celeriac: a distributed task queue with Celery's API."""
    if workdir:
        try:
            os.chdir(workdir)
        except OSError as exc:
            raise click.ClickException(f"cannot use --workdir {workdir!r}: {exc}") from None
    if loader:
        click.echo(f"--loader {loader} is not used: celeriac has no loaders", err=True)
    ctx.ensure_object(dict).update(
        reference=reference,
        broker=broker,
        backend=backend,
        config=config,
        quiet=quiet,
        no_color=no_color,
    )


@cli.command()
@click.option("-c", "--concurrency", type=click.IntRange(min=1), help="Pool size (default: CPUs).")
@click.option("-Q", "--queues", default="", help="Comma-separated queues to consume.")
@click.option(
    "-l", "--loglevel", default="WARNING", type=click.Choice(LEVELS, case_sensitive=False)
)
@click.option("-P", "--pool", default="prefork", type=click.Choice(POOLS), show_default=True)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    help="-P asyncio: child processes, each running -c tasks on its event loop (default 1).",
)
@click.option("-n", "--hostname", help="Node name; %h is the host name.")
@click.option("--max-tasks-per-child", type=click.IntRange(min=1), help="Recycle after N tasks.")
@click.option("--max-memory-per-child", type=click.IntRange(min=1), help="Recycle above N KiB.")
@click.option("--prefetch-multiplier", type=click.IntRange(min=1), help="Messages held per slot.")
@click.option("--shutdown-timeout", type=float, help="Seconds running tasks get on SIGTERM.")
@click.option("-B", "--beat", is_flag=True, help="Also run beat, in a thread of this process.")
@daemon_options
@worker_flags
@click.pass_context
@one_line_errors
def worker(
    ctx: click.Context,
    concurrency: int | None,
    queues: str,
    loglevel: str,
    pool: str,
    processes: int | None,
    hostname: str | None,
    max_tasks_per_child: int | None,
    max_memory_per_child: int | None,
    prefetch_multiplier: int | None,
    shutdown_timeout: float | None,
    beat: bool,
    daemon: DaemonOptions,
    flags: WorkerFlags,
) -> None:
    """Start a worker that runs the app's tasks."""
    app = app_of(ctx)  # first: its setup_logging receivers decide how logging is set up
    setup_logging(loglevel, no_color=ctx.obj["no_color"])
    app.import_task_modules()
    flags.import_modules()
    daemonize(
        with_settings(daemon, app.conf), hostname
    )  # after the checks above, so their errors reach the terminal
    options = WorkerOptions(
        concurrency=concurrency,
        queues=tuple(q.strip() for q in queues.split(",") if q.strip()),
        pool=pool,
        processes=processes,
        hostname=hostname,
        max_tasks_per_child=max_tasks_per_child,
        max_memory_per_child=max_memory_per_child,
        prefetch_multiplier=prefetch_multiplier,
        shutdown_timeout=shutdown_timeout,
        **flags.worker_options(),
    )
    flags.log_notes()  # after daemonize: the lines go to the --logfile
    if not beat:
        _serve(ctx, app, options)
        return
    with embedded_beat(app):
        _serve(ctx, app, options)


def _serve(ctx: click.Context, app: Celeriac, options: WorkerOptions) -> None:
    """Build the worker, print its start-up banner (unless ``-q``), and run it."""
    node = Worker(app, options)
    if not ctx.obj["quiet"]:
        color = not ctx.obj["no_color"] and sys.stdout.isatty()
        click.echo(banner(node, color=color))
    node.run()


@cli.command()
@click.argument("name")
@click.option("-a", "--args", "args_json", help="Positional arguments as a JSON list.")
@click.option("-k", "--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("--countdown", type=float, help="Run no sooner than N seconds from now.")
@click.option("--queue", help="Queue to send to.")
@click.option("--priority", type=click.IntRange(0, 9), help="0 (default) to 9 (first).")
@click.option("--expires", type=float, help="Drop the call if not started within N seconds.")
@click.pass_context
@one_line_errors
def call(
    ctx: click.Context,
    name: str,
    args_json: str | None,
    kwargs_json: str | None,
    countdown: float | None,
    queue: str | None,
    priority: int | None,
    expires: float | None,
) -> None:
    """Send a call of task NAME and print its id."""
    args = json_argument(args_json, "--args", list)
    kwargs = json_argument(kwargs_json, "--kwargs", dict)
    result = app_of(ctx).send_task(
        name, args, kwargs, countdown=countdown, queue=queue, priority=priority, expires=expires
    )
    click.echo(result.id)


@cli.command()
@click.argument("task_id")
@click.option("-t", "--timeout", type=float, help="Wait up to N seconds for the task to finish.")
@click.option("--traceback", "show_traceback", is_flag=True, help="Print the remote traceback.")
@click.pass_context
@one_line_errors
def result(ctx: click.Context, task_id: str, timeout: float | None, show_traceback: bool) -> None:
    """Print the state and result of task TASK_ID (exit status 1 if it failed)."""
    handle = app_of(ctx).AsyncResult(task_id)
    if timeout is not None:
        handle.get(timeout=timeout, propagate=False)
    state = handle.state
    value = handle.result
    if isinstance(value, BaseException):
        click.echo(f"{state}: {type(value).__name__}: {value}")
        if show_traceback and handle.traceback:
            click.echo(handle.traceback.rstrip())
        sys.exit(1 if state == "FAILURE" else 0)
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):
        shown = repr(value)
    click.echo(f"{state}: {shown}" if state != "SUCCESS" else shown)


@cli.command()
@click.option("-Q", "--queues", default="", help="Comma-separated queues (default: the default).")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@one_line_errors
def purge(ctx: click.Context, queues: str, force: bool) -> None:
    """Delete every waiting message from the queues."""
    app = app_of(ctx)
    names = [q.strip() for q in queues.split(",") if q.strip()] or [app.conf.task_default_queue]
    if not force:
        click.confirm(f"Delete every waiting message in {', '.join(names)}?", abort=True)
    removed = app.broker.purge(names)
    click.echo(f"Purged {removed} message{'s' if removed != 1 else ''} from {', '.join(names)}.")


cli.add_command(beat_command)
cli.add_command(schedule_command)
cli.add_command(dag_command)
cli.add_command(dashboard_command)
cli.add_command(multi)
cli.add_command(inspect_command)
cli.add_command(control_command)
cli.add_command(status_command)
cli.add_command(deadletters)
cli.add_command(events_command)


def main() -> None:
    """The console entry point."""
    try:
        cli(obj={})
    except ConfigurationError as exc:  # raised outside a command (should not happen)
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
