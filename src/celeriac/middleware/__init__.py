"""Middleware: what cuts across a message's life, as typed hooks (see ``middleware/base.py``).

Every app runs the built-in ones first (``CelerySignals``, which sends Celery's signals, and
``TaskHandlers``, which calls a task class's ``on_success`` and friends), then those of the
``middleware`` setting (``Celery(..., middleware=[...])``).
"""

from celeriac.middleware.base import HOOKS, Middleware, MiddlewareStack
from celeriac.middleware.handlers import TaskHandlers
from celeriac.middleware.signals import CelerySignals, ExceptionInfo

__all__ = [
    "HOOKS",
    "CelerySignals",
    "ExceptionInfo",
    "Middleware",
    "MiddlewareStack",
    "TaskHandlers",
]
