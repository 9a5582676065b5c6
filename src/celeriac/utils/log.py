"""Loggers for task code, as Celery's ``celery.utils.log``: ``get_task_logger(__name__)``.

A task logger's records carry ``task_name`` and ``task_id`` (``'???'`` outside a task, as in
Celery), so Celery's task format works in any formatter::

    [%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s

Records of other loggers do not carry them; :class:`TaskFormatter` fills them in for every
record, for a handler that formats both.
"""

from __future__ import annotations

import logging

from celeriac.request import current_request

__all__ = ["TaskFormatter", "get_logger", "get_task_logger", "task_fields"]

UNKNOWN = "???"
TASK_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"


def task_fields() -> tuple[str, str]:
    """The name and id of the task call running here, or ``'???'`` for each."""
    request = current_request()
    if request is None:
        return UNKNOWN, UNKNOWN
    return request.task or UNKNOWN, request.id or UNKNOWN


class TaskFilter(logging.Filter):
    """Puts ``task_name`` and ``task_id`` on each record (it never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the fields of the running task (kept when a record already has them)."""
        name, task_id = task_fields()
        if not hasattr(record, "task_name"):
            record.task_name = name
        if not hasattr(record, "task_id"):
            record.task_id = task_id
        return True


_FILTER = TaskFilter()


def get_logger(name: str) -> logging.Logger:
    """The standard library's logger ``name`` (Celery's ``get_logger``)."""
    return logging.getLogger(name)


def get_task_logger(name: str) -> logging.Logger:
    """A logger for task code whose records carry ``task_name`` and ``task_id``.

    Raises:
        RuntimeError: ``name`` is one of celeriac's own loggers.
    """
    if name in ("celeriac", "celeriac.worker", "celery", "celery.task"):
        raise RuntimeError(f"logger name {name!r} is reserved for celeriac's own use")
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


class TaskFormatter(logging.Formatter):
    """A formatter that gives every record ``task_name`` and ``task_id`` (Celery's
    ``TaskFormatter``), so one handler can format task and other records alike."""

    def __init__(self, fmt: str | None = TASK_FORMAT, *args: object, **kwargs: object) -> None:
        super().__init__(fmt, *args, **kwargs)  # type: ignore[arg-type]

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record``, with the running task's fields when it has none."""
        _FILTER.filter(record)
        return super().format(record)
