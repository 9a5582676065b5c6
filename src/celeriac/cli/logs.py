"""Logging set-up for the command line: one readable line per event, on stderr."""

from __future__ import annotations

import logging
import sys

from celeriac.exceptions import ConfigurationError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def setup_logging(level: str = "WARNING") -> None:
    """Send celeriac's log records (and the root logger's) to stderr at ``level``.

    Raises:
        ConfigurationError: an unknown level name.
    """
    name = level.upper()
    if name not in LEVELS:
        raise ConfigurationError(f"unknown log level {level!r}: choose from {', '.join(LEVELS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("[%(asctime)s: %(levelname)s/%(processName)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(name)
