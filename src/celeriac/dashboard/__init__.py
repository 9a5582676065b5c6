"""The web dashboard: tasks, workers, queues, dead letters, schedules and DAG runs, live.

``celeriac -A proj dashboard`` serves it (``cli/dashboard.py``); ``server.create_app(app)`` is
the ASGI app, to mount elsewhere. The web parts need the ``dashboard`` extra (``pip install
'celeriac[dashboard]'``: starlette, uvicorn, jinja2), so this package imports none of them:
``options`` works without it. See docs/design/dashboard.md.
"""

from __future__ import annotations

from celeriac.dashboard.options import DEFAULT_ADDRESS, DEFAULT_PORT, DashboardOptions

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_PORT", "DashboardOptions"]
