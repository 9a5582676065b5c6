"""Django, as Celery's Django fixup handles it.

When ``DJANGO_SETTINGS_MODULE`` is set (``proj/celery.py`` sets it, as Celery's "First steps
with Django" shows) and Django is importable:

- the worker and beat call ``django.setup()`` before they import task modules, so a ``tasks.py``
  may import models; prefork children are forked after that and inherit the ready registry;
- ``app.autodiscover_tasks()`` with no packages looks in every installed app;
- :class:`DjangoFixup`, a built-in middleware, drops in each pool child the database
  connections inherited from the parent (without closing them under the parent's feet), and
  around each task calls Django's ``close_old_connections()``, which closes a connection that
  is broken or older than ``CONN_MAX_AGE``: a long-lived worker never runs a task on a
  connection the database server has dropped.

Django is imported only here, and only when the project uses it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import ConfigurationError
from celeriac.middleware.base import Middleware

if TYPE_CHECKING:
    from celeriac.execution import Outcome
    from celeriac.request import Request
    from celeriac.task import Task
    from celeriac.worker import Worker

log = logging.getLogger("celeriac.fixups.django")


def django_in_use() -> bool:
    """True when ``DJANGO_SETTINGS_MODULE`` is set and Django can be imported."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return False
    return importlib.util.find_spec("django") is not None


def setup_django() -> bool:
    """Call ``django.setup()`` once, when Django is in use; True if it is.

    Raises:
        ConfigurationError: the settings module cannot be imported or Django refuses it.
    """
    if not django_in_use():
        return False
    import django
    from django.apps import apps

    if apps.ready:
        return True
    try:
        django.setup()
    except Exception as exc:
        settings = os.environ.get("DJANGO_SETTINGS_MODULE")
        raise ConfigurationError(
            f"django.setup() failed for DJANGO_SETTINGS_MODULE={settings!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return True


def installed_apps() -> list[str]:
    """The package of every installed Django app (``django.setup()`` first).

    Raises:
        ConfigurationError: see :func:`setup_django`.
    """
    setup_django()
    from django.apps import apps

    return [config.name for config in apps.get_app_configs()]


class DjangoFixup(Middleware):
    """The built-in middleware that the app adds when Django is in use; see the module
    docstring."""

    def worker_start(self, worker: Worker) -> None:
        """Warn, as Celery does, that ``DEBUG`` makes Django keep every query in memory."""
        from django.conf import settings

        if getattr(settings, "DEBUG", False):
            log.warning(
                "Django's settings.DEBUG is on: Django keeps every query in memory, so a "
                "long-running worker grows; never run a production worker with DEBUG = True"
            )

    def child_start(self) -> None:
        """Forget the parent's database connections: closing them politely would end the
        parent's sessions too, so only this process's copy of the socket is closed."""
        from django.db import connections

        for connection in connections.all():
            raw = getattr(connection, "connection", None)
            if raw is not None:
                _close_descriptor(raw)
            try:
                connection.close()
            except Exception:  # a connection whose socket is gone may complain; it is closed
                log.debug("closing %s in a new child", connection.alias, exc_info=True)

    def before_execute(self, task: Task[Any, Any], request: Request) -> None:
        """Close broken or expired connections before the task (``CONN_MAX_AGE``)."""
        if not request.is_eager:
            _close_old_connections()

    def after_execute(
        self, task: Task[Any, Any], request: Request, outcome: Outcome, value: Any
    ) -> None:
        """And after it, as Django does around each request."""
        if not request.is_eager:
            _close_old_connections()


def _close_old_connections() -> None:
    from django.db import close_old_connections

    close_old_connections()


def _close_descriptor(raw: Any) -> None:
    """Close the file descriptor under a DB-API connection, when it has one (PostgreSQL,
    MySQL); SQLite's has none, and closing it normally is harmless."""
    fileno = getattr(raw, "fileno", None)
    if not callable(fileno):
        return
    with contextlib.suppress(OSError, TypeError, ValueError):
        os.close(fileno())
