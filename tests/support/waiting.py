"""Waiting in tests for something another process or thread will do, without a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Call ``predicate`` every ``interval`` seconds until it returns something true.

    Returns True as soon as it does, False when ``timeout`` seconds pass first (so a test
    writes ``assert wait_for(...), what_went_wrong``). It is called at least once, and once
    more at the deadline, so a slow last check still counts.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))
