"""Middleware: what cuts across a message's life, as typed hooks (see ``middleware/base.py``).

Every app runs the built-in ones first (``CelerySignals``, which sends Celery's signals), then
those given as ``Celery(..., middleware=[...])``, then those of the ``middleware`` setting.
"""

from celeriac.middleware.base import HOOKS, Middleware, MiddlewareStack
from celeriac.middleware.signals import CelerySignals, ExceptionInfo

__all__ = ["HOOKS", "CelerySignals", "ExceptionInfo", "Middleware", "MiddlewareStack"]
