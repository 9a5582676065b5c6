"""``task_annotations``: Celery's way to change tasks' options from the configuration.

    task_annotations = {'tasks.add': {'rate_limit': '10/s'}}        # one task
    task_annotations = {'*': {'acks_late': False}}                   # every task
    task_annotations = [MyAnnotate(), {'tasks.mul': {...}}]          # several, in order

An entry is a dict by task name (``'*'`` for all) or an object with ``annotate(task)`` that
returns the dict for that task (or None). Each value is set on the task as an attribute; a key
that starts with ``@`` (``'@on_failure': around``) wraps that method, as Celery's does:
``around(method)`` gets the class's function and returns the one to use in its place. The app
applies them to each task when it is registered and again when it is finalized, so the order
of configuring and defining tasks does not matter.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import ConfigurationError
from celeriac.rates import parse_rate
from celeriac.task import HANDLERS

if TYPE_CHECKING:
    from celeriac.task import Task


def _entries(setting: Any) -> list[Any]:
    if not setting:
        return []
    return list(setting) if isinstance(setting, list | tuple) else [setting]


def annotations_for(task: Task[Any, Any], setting: Any) -> dict[str, Any]:
    """What ``task_annotations`` sets on ``task``, later entries winning.

    Raises:
        ConfigurationError: an entry is neither a dict nor an object with ``annotate``.
    """
    found: dict[str, Any] = {}
    for entry in _entries(setting):
        if isinstance(entry, Mapping):
            for key in ("*", task.name):
                found.update(entry.get(key) or {})
        elif callable(getattr(entry, "annotate", None)):
            found.update(entry.annotate(task) or {})
        else:
            raise ConfigurationError(
                "task_annotations entries must be dicts by task name or objects with an "
                f"annotate(task) method, not {entry!r}"
            )
    return found


def annotate(task: Task[Any, Any], setting: Any) -> None:
    """Set what ``task_annotations`` gives ``task`` on it.

    Raises:
        ConfigurationError: a bad entry, an attribute the task does not have, or a bad
            ``rate_limit``.
    """
    for key, value in annotations_for(task, setting).items():
        name = key.removeprefix("@")
        if not hasattr(task, name):
            raise ConfigurationError(f"task_annotations for {task.name}: no task option {name!r}")
        if key.startswith("@"):
            original = getattr(type(task), name)
            setattr(task, name, types.MethodType(value(original), task))
            if name in HANDLERS:
                task.overridden_handlers = task.overridden_handlers | {name}
        else:
            setattr(task, name, value)
    parse_rate(task.rate_limit)
