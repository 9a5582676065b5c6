"""``app.autodiscover_tasks()``: the ``tasks`` modules of a project's packages, imported late.

A Django project calls ``app.autodiscover_tasks()`` in ``proj/celery.py``, which runs while
``proj/__init__.py`` is imported, before Django's apps are ready. So, as in Celery, the call
only notes what to look for; the modules are imported when the worker (or beat) imports the
task modules, or the app finalizes. ``force=True`` imports them at once.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType

from celeriac.exceptions import ConfigurationError
from celeriac.fixups.django import django_in_use, installed_apps

log = logging.getLogger("celeriac.app")

Packages = Iterable[str] | Callable[[], Iterable[str]] | None


@dataclass(frozen=True)
class _Request:
    packages: Packages
    related_name: str


class Discovery:
    """The ``autodiscover_tasks`` calls of one app, waiting for :meth:`run`."""

    def __init__(self) -> None:
        self._waiting: list[_Request] = []
        self._lock = threading.Lock()

    def add(self, packages: Packages, related_name: str) -> None:
        """Note a call, to be imported by the next :meth:`run`."""
        with self._lock:
            self._waiting.append(_Request(packages, related_name))

    def run(self) -> list[ModuleType]:
        """Import every noted package's related module; returns the modules imported.

        Raises:
            ConfigurationError: a package cannot be imported, or its related module raised an
                error while it was imported (the message names it).
        """
        with self._lock:
            waiting, self._waiting = self._waiting, []
        found: list[ModuleType] = []
        for request in waiting:
            found.extend(discover(request.packages, request.related_name))
        return found


def discover(packages: Packages, related_name: str = "tasks") -> list[ModuleType]:
    """Import ``<package>.<related_name>`` for each package (Django's installed apps when
    ``packages`` is None and Django is configured); a package without one is skipped.

    Raises:
        ConfigurationError: see :meth:`Discovery.run`.
    """
    if packages is None:
        if not django_in_use():
            log.warning(
                "autodiscover_tasks() was given no packages and Django is not configured "
                "(DJANGO_SETTINGS_MODULE): no task modules to discover"
            )
            return []
        names: Iterable[str] = installed_apps()
    else:
        names = packages() if callable(packages) else packages
    modules = [related_module(name, related_name) for name in names]
    return [module for module in modules if module is not None]


def related_module(package: str, related_name: str) -> ModuleType | None:
    """``package.related_name`` imported, or None when the package has no such module.

    As Celery's ``find_related_module``: an ``INSTALLED_APPS`` entry naming an app config class
    (``shop.apps.ShopConfig``) is looked up in the package above it.

    Raises:
        ConfigurationError: the package cannot be imported, or the related module (or a module
            it imports) fails to import.
    """
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as exc:
        parent = package.rpartition(".")[0]
        if not parent or exc.name != package:
            raise ConfigurationError(
                f"autodiscover_tasks: cannot import {package!r}: {exc}"
            ) from exc
        package = parent
    except Exception as exc:
        raise ConfigurationError(
            f"autodiscover_tasks: importing {package!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not related_name:
        return importlib.import_module(package)
    module_name = f"{package}.{related_name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise _failed(module_name, exc) from exc
    except Exception as exc:
        raise _failed(module_name, exc) from exc


def _failed(module_name: str, exc: BaseException) -> ConfigurationError:
    return ConfigurationError(
        f"cannot import task module {module_name!r}: {type(exc).__name__}: {exc}"
    )
