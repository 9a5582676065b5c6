"""``celeriac -A proj dashboard``: serve the web dashboard (``celeriac.dashboard``).

Without ``-A``, ``--broker`` and ``--result-backend`` name the stores to watch, as
``celeriac dashboard --broker redis://...`` (an app with no tasks of its own is made for them).
"""

from __future__ import annotations

import click

from celeriac.app import Celeriac
from celeriac.cli.common import app_of, one_line_errors
from celeriac.dashboard import DEFAULT_ADDRESS, DEFAULT_PORT, DashboardOptions
from celeriac.exceptions import ConfigurationError
from celeriac.urls import mask_url


@click.command()
@click.option("--address", default=DEFAULT_ADDRESS, show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--basic-auth", metavar="USER:PASSWORD", help="Require HTTP basic auth.")
@click.option(
    "--token",
    metavar="SECRET",
    envvar="CELERIAC_DASHBOARD_TOKEN",
    help="Require this bearer token.",
)
@click.option("-b", "--broker", help="Broker URL to watch (without -A, or over the app's).")
@click.option("--result-backend", "backend", help="Result backend URL to watch.")
@click.pass_context
@one_line_errors
def dashboard(
    ctx: click.Context,
    address: str,
    port: int,
    basic_auth: str | None,
    token: str | None,
    broker: str | None,
    backend: str | None,
) -> None:
    """Serve the web dashboard (on 127.0.0.1:5555 by default)."""
    options = DashboardOptions(address=address, port=port, basic_auth=basic_auth, token=token)
    options.check()  # before anything else: a refused address says so in one line
    state = ctx.ensure_object(dict)
    state["broker"] = broker or state.get("broker")
    state["backend"] = backend or state.get("backend")
    app = _app(ctx)
    try:
        from celeriac.dashboard.server import serve
    except ImportError as exc:
        raise ConfigurationError(
            f"the dashboard needs its extra: pip install 'celeriac[dashboard]' ({exc.name})"
        ) from None
    ready = f"celeriac dashboard on {options.url} (broker {mask_url(app.broker.url)})"
    serve(app, options, ready=ready)


def _app(ctx: click.Context) -> Celeriac:
    state = ctx.ensure_object(dict)
    if state.get("reference"):
        return app_of(ctx)
    app = Celeriac("dashboard", broker=state.get("broker"), backend=state.get("backend"))
    if state.get("config"):
        app.config_from_object(state["config"])
    return app
