"""``Middleware``: typed no-op hooks at every point a message passes, and the stack that calls them.

A message's life, with the hook called at each point::

    client          before_publish -> broker -> after_publish
    worker (main)   after_fetch -> [after_skip: revoked or expired, it will not run]
    where it runs   before_execute -> [on_retry | on_failure] -> after_execute
    worker (main)   after_settle: its outcome stored, the message acked, requeued or dead-lettered
    processes       worker_start / worker_stop (main process), child_start (each prefork
                    child, before its first task), beat_start

"Where it runs" is a prefork child, a thread of the ``threads`` pool, the worker's own thread
for ``solo``, or this process for ``task.apply()``. Hooks named ``before_*`` and ``*_start``
run in the order the middleware was given, all others in the reverse order, so a pair nests
(Dramatiq's rule). A hook that raises is logged with the middleware's name and the hook's, and
the message goes on as if the hook had returned: a middleware never loses a message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.beat import Beat
    from celeriac.execution import Outcome
    from celeriac.message import Message
    from celeriac.request import Request
    from celeriac.task import Task
    from celeriac.worker import Held, Worker

log = logging.getLogger("celeriac.middleware")


class Middleware:
    """Subclass and override the hooks you need; each default does nothing.

    Add yours with ``Celery(..., middleware=[Mine()])`` or the ``middleware`` setting. Hooks
    that run where tasks run are called in the pool child for prefork: an instance given to the
    app is copied into each child when it forks.
    """

    # -- the client ---------------------------------------------------------------------------
    def before_publish(self, message: Message) -> None:
        """``message`` is built and about to be signed and sent; ``message.headers`` may be
        changed here."""

    def after_publish(self, message: Message) -> None:
        """``message`` is in the broker."""

    # -- the worker's main process -----------------------------------------------------------
    def worker_start(self, worker: Worker) -> None:
        """The worker is ready: its pool runs and it is about to fetch."""

    def worker_stop(self, worker: Worker) -> None:
        """The worker has stopped fetching and settled what it held; it is about to exit."""

    def after_fetch(self, worker: Worker, held: Held) -> None:
        """A message was fetched and passed the checks (it decodes, its task is known)."""

    def after_skip(self, worker: Worker, held: Held) -> None:
        """A fetched message will not run: it was revoked or it expired."""

    def after_settle(self, worker: Worker, held: Held) -> None:
        """A message's outcome is stored and the message acked, requeued or dead-lettered
        (``held.action`` says which, ``held.outcome`` what happened)."""

    # -- where tasks run -------------------------------------------------------------------------
    def child_start(self) -> None:
        """A prefork child started, before its first task."""

    def before_execute(self, task: Task[Any, Any], request: Request) -> None:
        """``task`` is about to run with ``request`` (its ``self.request``)."""

    def on_retry(self, task: Task[Any, Any], request: Request, reason: BaseException) -> None:
        """The run asked to be retried (``self.retry()`` or ``autoretry_for``)."""

    def on_failure(self, task: Task[Any, Any], request: Request, exc: BaseException) -> None:
        """The run failed with ``exc`` (its ``__traceback__`` is still set)."""

    def after_execute(
        self, task: Task[Any, Any], request: Request, outcome: Outcome, value: Any
    ) -> None:
        """The run ended: ``outcome`` as it will be recorded; ``value`` is what the task
        returned, or the exception it raised."""

    # -- beat -----------------------------------------------------------------------------------
    def beat_start(self, beat: Beat) -> None:
        """A beat process (or ``worker -B``'s beat thread) is about to send its first fires."""


HOOKS = tuple(
    name for name, value in vars(Middleware).items() if callable(value) and not name.startswith("_")
)


def _in_order(hook: str) -> bool:
    return hook.startswith("before_") or hook.endswith("_start")


class MiddlewareStack:
    """Calls a hook on every middleware that overrides it; see the module docstring."""

    def __init__(self, middleware: Sequence[Middleware] = ()) -> None:
        self.middleware = tuple(middleware)
        self._hooks: dict[str, list[Callable[..., None]]] = {}
        for hook in HOOKS:
            ordered = self.middleware if _in_order(hook) else self.middleware[::-1]
            default = getattr(Middleware, hook)
            self._hooks[hook] = [
                getattr(m, hook) for m in ordered if getattr(type(m), hook) is not default
            ]
        # The hooks every task passes, looked up once: each is called with its own loop below,
        # not through _call (a frame and a tuple of arguments a hook, in the main process that
        # every task goes through, and in the child beside the task).
        self._after_fetch = self._hooks["after_fetch"]
        self._after_settle = self._hooks["after_settle"]
        self._before_execute = self._hooks["before_execute"]
        self._after_execute = self._hooks["after_execute"]

    def __repr__(self) -> str:
        return f"<MiddlewareStack {[type(m).__name__ for m in self.middleware]}>"

    def _call(self, hook: str, *args: Any) -> None:
        for method in self._hooks[hook]:
            try:
                method(*args)
            except Exception:
                _raised(method, hook)

    def before_publish(self, message: Message) -> None:
        """See :meth:`Middleware.before_publish`."""
        if self._hooks["before_publish"]:
            self._call("before_publish", message)

    def after_publish(self, message: Message) -> None:
        """See :meth:`Middleware.after_publish`."""
        if self._hooks["after_publish"]:
            self._call("after_publish", message)

    def worker_start(self, worker: Worker) -> None:
        """See :meth:`Middleware.worker_start`."""
        self._call("worker_start", worker)

    def worker_stop(self, worker: Worker) -> None:
        """See :meth:`Middleware.worker_stop`."""
        self._call("worker_stop", worker)

    def after_fetch(self, worker: Worker, held: Held) -> None:
        """See :meth:`Middleware.after_fetch`."""
        for method in self._after_fetch:
            try:
                method(worker, held)
            except Exception:
                _raised(method, "after_fetch")

    def after_skip(self, worker: Worker, held: Held) -> None:
        """See :meth:`Middleware.after_skip`."""
        if self._hooks["after_skip"]:
            self._call("after_skip", worker, held)

    def after_settle(self, worker: Worker, held: Held) -> None:
        """See :meth:`Middleware.after_settle`."""
        for method in self._after_settle:
            try:
                method(worker, held)
            except Exception:
                _raised(method, "after_settle")

    def child_start(self) -> None:
        """See :meth:`Middleware.child_start`."""
        self._call("child_start")

    def before_execute(self, task: Task[Any, Any], request: Request) -> None:
        """See :meth:`Middleware.before_execute`."""
        for method in self._before_execute:
            try:
                method(task, request)
            except Exception:
                _raised(method, "before_execute")

    def on_retry(self, task: Task[Any, Any], request: Request, reason: BaseException) -> None:
        """See :meth:`Middleware.on_retry`."""
        self._call("on_retry", task, request, reason)

    def on_failure(self, task: Task[Any, Any], request: Request, exc: BaseException) -> None:
        """See :meth:`Middleware.on_failure`."""
        self._call("on_failure", task, request, exc)

    def after_execute(
        self, task: Task[Any, Any], request: Request, outcome: Outcome, value: Any
    ) -> None:
        """See :meth:`Middleware.after_execute`."""
        for method in self._after_execute:
            try:
                method(task, request, outcome, value)
            except Exception:
                _raised(method, "after_execute")

    def beat_start(self, beat: Beat) -> None:
        """See :meth:`Middleware.beat_start`."""
        self._call("beat_start", beat)


def _raised(method: Callable[..., None], hook: str) -> None:
    """Log the exception a middleware's hook raised (the message goes on)."""
    owner = type(getattr(method, "__self__", method)).__name__
    log.exception("middleware %s raised in %s; carrying on", owner, hook)
