"""Finding an app from a reference such as ``tasks``, ``proj.celery`` or ``proj.celery:app``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

from celeriac.app import Celeriac
from celeriac.exceptions import ConfigurationError

_USUAL_NAMES = ("app", "celery", "celeriac")


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise ConfigurationError(f"cannot import module {name!r}: no such module") from None
        raise ConfigurationError(f"cannot import module {name!r}: {exc}") from exc
    except Exception as exc:
        raise ConfigurationError(
            f"importing module {name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def _apps_in(module: ModuleType) -> list[Celeriac]:
    """The apps a module holds: ``app`` or ``celery`` (or ``celeriac``) first, as Celery looks,
    else every app among its attributes (once each, an app bound to two names is one app)."""
    for name in _USUAL_NAMES:
        candidate = getattr(module, name, None)
        if isinstance(candidate, Celeriac):
            return [candidate]
    found: list[Celeriac] = []
    for value in vars(module).values():
        if isinstance(value, Celeriac) and all(value is not seen for seen in found):
            found.append(value)
    return found


def _app_submodule(module: ModuleType) -> Celeriac | None:
    """For a package with no app of its own (``proj/__init__.py`` empty), the app in
    ``proj/celery.py``, Celery's "Next steps" layout. A submodule that exists but fails to
    import is an error, not a miss."""
    if not hasattr(module, "__path__"):
        return None
    for name in ("celery", "celeriac"):
        full = f"{module.__name__}.{name}"
        try:
            exists = importlib.util.find_spec(full) is not None
        except (ImportError, ValueError):
            exists = False
        if exists:
            apps = _apps_in(_import(full))
            if len(apps) == 1:
                return apps[0]
    return None


def _app_in(module: ModuleType) -> Celeriac:
    apps = _apps_in(module)
    if len(apps) == 1:
        return apps[0]
    if len(apps) > 1:
        raise ConfigurationError(
            f"module {module.__name__!r} has several apps: name one, as {module.__name__}:NAME"
        )
    app = _app_submodule(module)
    if app is None:
        raise ConfigurationError(
            f"module {module.__name__!r} has no celeriac app in it (looked for an attribute "
            f"app or celery, any Celery instance, and a submodule {module.__name__}.celery)"
        )
    return app


def find_app(reference: str) -> Celeriac:
    """The app that ``reference`` names, looked for as Celery does: ``proj.celery:app`` (an
    attribute), ``proj.celery.app``, or a module (``proj``, ``proj.celery``) whose attribute
    ``app`` or ``celery`` is an app, else its only app, else the app in its submodule
    ``celery`` (``proj/celery.py``). The current directory is importable, as with
    ``python -m``.

    Raises:
        ConfigurationError: the module cannot be imported or holds no app.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attribute = reference.partition(":")
    if attribute:
        app = getattr(_import(module_name), attribute, None)
        if not isinstance(app, Celeriac):
            raise ConfigurationError(f"{reference!r} is not a celeriac app")
        return app
    try:
        return _app_in(_import(module_name))
    except ConfigurationError:
        parent, _, name = module_name.rpartition(".")
        if parent:
            candidate = getattr(_import(parent), name, None)
            if isinstance(candidate, Celeriac):
                return candidate
        raise
