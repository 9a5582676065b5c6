"""Logging set-up for the command line: one readable line per event, on stderr.

As in Celery: when anything is connected to ``setup_logging``, the command sends it and
configures nothing itself; otherwise it configures the root logger, then sends
``after_setup_logger`` (with the root logger) and ``after_setup_task_logger`` (with the
``celeriac.task`` logger that task loggers sit under), so a project can add its own handlers.
"""

from __future__ import annotations

import logging
import sys

from celeriac import signals
from celeriac.exceptions import ConfigurationError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
TASK_LOGGER = "celeriac.task"


def setup_logging(level: str = "WARNING") -> None:
    """Send celeriac's log records (and the root logger's) to stderr at ``level``, unless a
    ``setup_logging`` receiver does it; see the module docstring.

    Raises:
        ConfigurationError: an unknown level name.
    """
    name = level.upper()
    if name not in LEVELS:
        raise ConfigurationError(f"unknown log level {level!r}: choose from {', '.join(LEVELS)}")
    number = logging.getLevelName(name)
    given = {"loglevel": number, "logfile": None, "format": FORMAT, "colorize": False}
    if signals.setup_logging.has_receivers():
        signals.setup_logging.send(sender=None, **given)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(name)
    signals.after_setup_logger.send(sender=None, logger=root, **given)
    task_logger = logging.getLogger(TASK_LOGGER)
    signals.after_setup_task_logger.send(sender=None, logger=task_logger, **given)
