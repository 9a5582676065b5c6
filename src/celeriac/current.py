"""Which app is current: the one that a result handle, a signature or a DAG made without an app
talks to (``AsyncResult(task_id)``, ``signature('tasks.add')``).

The current app is the most recently created one. None is ever made behind the program's back:
asking for it before any app exists is an error that says what to do.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from celeriac.exceptions import ConfigurationError

if TYPE_CHECKING:
    from celeriac.app import Celeriac

_lock = threading.Lock()
_current: Celeriac | None = None


def set_current_app(app: Celeriac) -> None:
    """Make ``app`` the current app (every new ``Celeriac`` does this for itself)."""
    global _current
    with _lock:
        _current = app


def current_app() -> Celeriac:
    """The most recently created app.

    Raises:
        ConfigurationError: no app has been created in this process yet.
    """
    with _lock:
        app = _current
    if app is None:
        raise ConfigurationError(
            "no celeriac app exists in this process yet: create one first, "
            "app = Celery('tasks', broker=...), or pass app= explicitly"
        )
    return app
