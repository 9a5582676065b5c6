"""``TestApp``: an app for tests, on a fresh in-memory broker and result backend unless the
config names others, as Celery's ``celery.contrib.testing.app.TestApp``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from celeriac.app import Celeriac

DEFAULT_TEST_CONFIG: Mapping[str, Any] = {
    "task_always_eager": False,  # the worker runs tasks, as in production
}


def TestApp(
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    set_as_current: bool = False,
    broker: str | None = None,
    backend: str | None = None,
    **parameters: Any,
) -> Celeriac:
    """A new app named ``name`` with ``config`` on top of ``DEFAULT_TEST_CONFIG``; its broker
    and backend are one fresh ``memory://`` store unless ``broker``, ``backend`` or
    ``config`` name others. ``parameters`` go to the app's constructor.

    Raises:
        ConfigurationError: an unknown setting in ``config``.
    """
    app = Celeriac(name or "celery.tests", **parameters)
    app.conf.update({**DEFAULT_TEST_CONFIG, **(config or {})})
    memory = f"memory://test-{uuid.uuid4().hex}"
    if broker or not app.conf.broker_url:
        app.conf.broker_url = broker or memory
    if backend or not app.conf.result_backend:
        default = memory if app.conf.broker_url.startswith("memory://") else None
        app.conf.result_backend = backend or default
    if set_as_current:
        from celeriac.current import set_current_app

        set_current_app(app)
    return app


__all__ = ["DEFAULT_TEST_CONFIG", "TestApp"]
