"""Logging set-up for the command line: one readable line per event, on stderr.

As in Celery: when anything is connected to ``setup_logging``, the command sends it and
configures nothing itself; otherwise it configures the root logger, then sends
``after_setup_logger`` (with the root logger) and ``after_setup_task_logger`` (with the
``celeriac.task`` logger that task loggers sit under), so a project can add its own handlers.

Two things make the lines easier to read. On a terminal (and unless ``--no-color``), the level
is coloured: red for errors, yellow for warnings. And a warning or error that repeats (the same
logger, the same message but for its numbers: "cannot reach the broker: ... retrying in 0.4s") is
written once per ``REPEAT_INTERVAL``; the next line of that kind says how many were held back
(``(and 14 more like it in the last 10s)``), so an outage fills no disk.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable

from celeriac import signals
from celeriac.exceptions import ConfigurationError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
TASK_LOGGER = "celeriac.task"
REPEAT_INTERVAL = 10.0  # seconds: one line per kind of warning or error in this long
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")
COLORS = {"CRITICAL": "1;31", "ERROR": "31", "WARNING": "33", "DEBUG": "2"}  # ANSI SGR codes


class RepeatFilter(logging.Filter):
    """Lets through one warning or error per kind per ``interval`` seconds; the next one that
    passes counts those held back. Lower levels always pass.

    A kind is a logger and a message, numbers aside: "cannot reach the broker: ... (retrying in
    0.4s)" and "(retrying in 2.0s)" are one kind; the failures of two tasks (their ids differ)
    are two.
    """

    def __init__(
        self, interval: float = REPEAT_INTERVAL, clock: Callable[[], float] = time.monotonic
    ):
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._kinds: dict[tuple[str, str], tuple[float, int]] = {}  # -> (passed at, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat within the interval; see the class docstring."""
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        kind = (record.name, _NUMBERS.sub("#", message))
        now = self.clock()
        passed_at, held = self._kinds.get(kind, (float("-inf"), 0))
        if now - passed_at < self.interval:
            self._kinds[kind] = (passed_at, held + 1)
            return False
        if held:
            record.msg = f"{message} (and {held} more like it in the last {now - passed_at:.0f}s)"
            record.args = None
        self._kinds[kind] = (now, 0)
        if len(self._kinds) > 1000:  # kinds seen once long ago: forget them
            self._kinds = {k: v for k, v in self._kinds.items() if now - v[0] < self.interval}
        return True


class ColorFormatter(logging.Formatter):
    """``FORMAT`` with the level name coloured (for a terminal)."""

    def format(self, record: logging.LogRecord) -> str:
        """The line, its level name in colour."""
        code = COLORS.get(record.levelname)
        if code is None:
            return super().format(record)
        plain = record.levelname
        record.levelname = f"\x1b[{code}m{plain}\x1b[0m"
        try:
            return super().format(record)
        finally:
            record.levelname = plain


def use_color(no_color: bool = False) -> bool:
    """Colour only on a terminal, and not with ``--no-color``."""
    return not no_color and sys.stderr.isatty()


def setup_logging(level: str = "WARNING", *, no_color: bool = False) -> None:
    """Send celeriac's log records (and the root logger's) to stderr at ``level``, unless a
    ``setup_logging`` receiver does it; see the module docstring.

    Raises:
        ConfigurationError: an unknown level name.
    """
    name = level.upper()
    if name not in LEVELS:
        raise ConfigurationError(f"unknown log level {level!r}: choose from {', '.join(LEVELS)}")
    number = logging.getLevelName(name)
    colorize = use_color(no_color)
    given = {"loglevel": number, "logfile": None, "format": FORMAT, "colorize": colorize}
    if signals.setup_logging.has_receivers():
        signals.setup_logging.send(sender=None, **given)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ColorFormatter(FORMAT) if colorize else logging.Formatter(FORMAT))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(name)
    signals.after_setup_logger.send(sender=None, logger=root, **given)
    task_logger = logging.getLogger(TASK_LOGGER)
    signals.after_setup_task_logger.send(sender=None, logger=task_logger, **given)
