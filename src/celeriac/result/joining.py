"""Whether ``get()`` may wait here: not inside a task run by a worker (with every pool process
waiting, the task waited for may never run), unless within :func:`allow_join_result`."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

E_WOULDBLOCK = (
    "Never call result.get() within a task!\n"
    "See https://docs.celeryq.dev/en/latest/userguide/tasks.html"
    "#avoid-launching-synchronous-subtasks"
)
_joins_denied: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "celeriac_joins_denied", default=False
)


@contextlib.contextmanager
def allow_join_result() -> Iterator[None]:
    """Let ``get()`` wait for other tasks inside this block, even inside a task (Celery's
    escape hatch: the caller takes the risk of a pool with every process waiting)."""
    token = _joins_denied.set(False)
    try:
        yield
    finally:
        _joins_denied.reset(token)


@contextlib.contextmanager
def denied_join_result() -> Iterator[None]:
    """Make ``get()`` raise inside this block (the worker runs every task in one)."""
    token = _joins_denied.set(True)
    try:
        yield
    finally:
        _joins_denied.reset(token)


def assert_will_not_block(disable_sync_subtasks: bool = True) -> None:
    """Refuse to wait for a result where waiting could deadlock the worker's pool.

    Raises:
        RuntimeError: called inside a task run by a worker, outside :func:`allow_join_result`,
            with ``disable_sync_subtasks`` true.
    """
    if disable_sync_subtasks and _joins_denied.get():
        raise RuntimeError(E_WOULDBLOCK)
