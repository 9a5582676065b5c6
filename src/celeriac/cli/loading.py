"""Finding an app from a reference such as ``tasks``, ``proj.celery`` or ``proj.celery:app``."""

from __future__ import annotations

import importlib
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


def _app_in(module: ModuleType) -> Celeriac:
    for name in _USUAL_NAMES:
        candidate = getattr(module, name, None)
        if isinstance(candidate, Celeriac):
            return candidate
    found = [v for v in vars(module).values() if isinstance(v, Celeriac)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConfigurationError(f"module {module.__name__!r} has no celeriac app in it")
    raise ConfigurationError(
        f"module {module.__name__!r} has several apps: name one, as {module.__name__}:NAME"
    )


def find_app(reference: str) -> Celeriac:
    """The app that ``reference`` (``module``, ``module:attribute`` or ``module.attribute``)
    names. The current directory is importable, as with ``python -m``.

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
