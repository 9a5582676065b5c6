"""What every command shares: the app named by ``-A``, and errors as one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from celeriac.app import Celeriac
from celeriac.cli.loading import find_app
from celeriac.exceptions import CeleriacError

F = TypeVar("F", bound=Callable[..., Any])


def one_line_errors(fn: F) -> F:
    """Turn a celeriac error into one line on stderr and exit status 1, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CeleriacError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def app_of(ctx: click.Context) -> Celeriac:
    """The app that ``-A`` names (found once per command), with ``--config``, ``-b`` and
    ``--result-backend`` applied.

    Raises:
        click.UsageError: no ``-A`` was given.
        ConfigurationError: the app cannot be found.
    """
    state: dict[str, Any] = ctx.ensure_object(dict)
    if "app" not in state:
        reference = state.get("reference")
        if not reference:
            raise click.UsageError("name your app with -A module[:app] (for example -A tasks)")
        app = find_app(reference)
        if state.get("config"):
            app.config_from_object(state["config"])
        if state.get("broker"):
            app.conf.broker_url = state["broker"]
        if state.get("backend"):
            app.conf.result_backend = state["backend"]
        state["app"] = app
    return state["app"]  # type: ignore[no-any-return]


def json_argument(value: str | None, what: str, kind: type) -> Any:
    """``value`` parsed as JSON of type ``kind`` (an empty one when None).

    Raises:
        click.BadParameter: it is not JSON, or not of that type.
    """
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"{what} must be JSON: {exc}") from None
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"{what} must be a JSON {kind.__name__}")
    return parsed
