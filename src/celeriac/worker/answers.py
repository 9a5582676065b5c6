"""A worker's answers to ``app.control``: it acts on each command read from the broadcast log
and, when asked, replies through the result backend (``celeriac.control.replies``).

Runs in the main process, from the main loop's command read (about every 0.2 s, busy or not),
so a command never races the dispatcher. What each command answers is Celery's:
``{'ok': ...}`` or ``{'error': ...}`` for a command, the value itself for a question
(``worker/inspection.py``). A reply that cannot be stored is logged, never raised.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.control.replies import write_reply
from celeriac.exceptions import CeleriacError
from celeriac.rates import parse_rate
from celeriac.worker import inspection
from celeriac.worker.held import Held

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

log = logging.getLogger("celeriac.worker")
Handler = Callable[["Answers", dict[str, Any]], Any]


def _ok(text: str) -> dict[str, str]:
    return {"ok": text}


def _error(text: str) -> dict[str, str]:
    return {"error": text}


class Answers:
    """Acts on control commands for ``worker`` and replies; see the module docstring."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.totals: Counter[str] = Counter()  # tasks that went to the pool, by name
        self.started_at = time.monotonic()

    def count(self, finished: Sequence[Held]) -> None:
        """Count the tasks of a broker batch that ran (for ``stats()['total']``)."""
        for held in finished:
            if held.ending is not None and held.message is not None:
                self.totals[held.message.task] += 1

    def apply(self, commands: Sequence[dict[str, Any]]) -> None:
        """Act on each command, oldest first, and reply where asked."""
        for command in commands:
            handler = HANDLERS.get(command["op"])
            try:
                answer = (
                    _error(f"unknown command {command['op']!r}")
                    if handler is None
                    else handler(self, command)
                )
            except (CeleriacError, TypeError, ValueError) as exc:
                answer = _error(str(exc))
            reply_to = command.get("reply_to")
            if isinstance(reply_to, str):
                self._reply(reply_to, answer)

    def _reply(self, reply_to: str, answer: Any) -> None:
        try:
            write_reply(self.worker.app.backend, reply_to, self.worker.hostname, answer)
        except CeleriacError as exc:
            log.warning("cannot reply to a control command: %s", exc)

    # -- commands -------------------------------------------------------------------------------
    def ping(self, command: dict[str, Any]) -> Any:
        """Answer that this worker is alive."""
        return _ok("pong")

    def revoke(self, command: dict[str, Any]) -> Any:
        """Confirm a revocation (the reader remembered it; the main loop killed what runs)."""
        # The reader already remembered the ids (and the main loop terminated what runs here).
        ids = ", ".join(str(i) for i in command.get("ids", []))
        return _ok(f"tasks {ids} flagged as revoked")

    def rate_limit(self, command: dict[str, Any]) -> Any:
        """Say how a rate limit went (the main loop applied it)."""
        # The main loop applied it (Worker._apply_commands); this only says how it went.
        task = command.get("task")
        if task not in self.worker.app.tasks:
            return _error("unknown task")
        parse_rate(command.get("rate"))
        return _ok("new rate limit set successfully")

    def time_limit(self, command: dict[str, Any]) -> Any:
        """Change a task's soft and hard time limits for the calls started from now on."""
        name = command.get("task_name")
        if name not in self.worker.app.tasks:
            return _error("unknown task")
        soft, hard = command.get("soft"), command.get("hard")
        task = self.worker.app.tasks[name]
        task.soft_time_limit = None if soft is None else float(soft)
        task.time_limit = None if hard is None else float(hard)
        # The dispatcher looks a task's limits up once: forget them, for its next call.
        self.worker.dispatcher._policies.pop(name, None)
        log.info("time limits of %s set to soft %s, hard %s", name, soft, hard)
        return _ok("time limits set successfully")

    def shutdown(self, command: dict[str, Any]) -> Any:
        """Stop this worker warm, as SIGTERM does."""
        log.warning("%s: shutdown asked by app.control", self.worker.hostname)
        self.worker.stop()
        return _ok("shutting down")

    def pool_grow(self, command: dict[str, Any]) -> Any:
        """Add processes (or threads) to the pool."""
        n = int(command.get("n", 1))
        self.worker.pool.pool_grow(n)
        self._resized()
        return _ok("pool will grow")

    def pool_shrink(self, command: dict[str, Any]) -> Any:
        """Stop idle processes (or threads) of the pool."""
        n = int(command.get("n", 1))
        self.worker.pool.pool_shrink(n)
        self._resized()
        return _ok("pool will shrink")

    def _resized(self) -> None:
        worker = self.worker
        worker.concurrency = worker.pool.size()
        worker.dispatcher.extra_prefetch = worker._extra_prefetch()
        log.info("%s: pool size now %d", worker.hostname, worker.concurrency)
        worker.dispatcher.dispatch()

    def add_consumer(self, command: dict[str, Any]) -> Any:
        """Fetch from one more queue."""
        queue = str(command.get("queue") or "")
        if not queue:
            return _error("no queue named")
        worker = self.worker
        if queue in worker.queues:
            return _ok(f"already consuming from {queue!r}")
        worker.queues = [*worker.queues, queue]
        worker.consumer.queues = list(worker.queues)  # read by the consumer at its next fetch
        log.info("%s: now consuming from %s", worker.hostname, queue)
        return _ok(f"add consumer {queue}")

    def cancel_consumer(self, command: dict[str, Any]) -> Any:
        """Stop fetching from a queue (not the last one)."""
        queue = str(command.get("queue") or "")
        worker = self.worker
        if queue not in worker.queues:
            return _error(f"not consuming from {queue!r}")
        if len(worker.queues) == 1:
            return _error(f"{queue!r} is the last queue this worker consumes from")
        worker.queues = [q for q in worker.queues if q != queue]
        worker.consumer.queues = list(worker.queues)
        log.info("%s: no longer consuming from %s", worker.hostname, queue)
        return _ok(f"no longer consuming from {queue}")

    # -- questions ------------------------------------------------------------------------------
    def active(self, command: dict[str, Any]) -> Any:
        """The tasks running now."""
        return inspection.active(self.worker)

    def reserved(self, command: dict[str, Any]) -> Any:
        """The tasks held and not started."""
        return inspection.reserved(self.worker)

    def scheduled(self, command: dict[str, Any]) -> Any:
        """Tasks with an ETA held here: none ever are."""
        return []  # delayed messages wait in the broker, never in a worker

    def registered(self, command: dict[str, Any]) -> Any:
        """The task names this worker runs."""
        items = command.get("taskinfoitems")
        return inspection.registered(self.worker, items if isinstance(items, list) else None)

    def stats(self, command: dict[str, Any]) -> Any:
        """Celery's statistics of this worker."""
        return inspection.stats(self.worker, dict(self.totals), self.started_at)

    def revoked(self, command: dict[str, Any]) -> Any:
        """The revoked ids remembered."""
        return self.worker.commands.revoked

    def active_queues(self, command: dict[str, Any]) -> Any:
        """The queues this worker fetches from."""
        return inspection.active_queues(self.worker)


HANDLERS: dict[str, Handler] = {
    name: getattr(Answers, name)
    for name in (
        "ping",
        "revoke",
        "rate_limit",
        "time_limit",
        "shutdown",
        "pool_grow",
        "pool_shrink",
        "add_consumer",
        "cancel_consumer",
        "active",
        "reserved",
        "scheduled",
        "registered",
        "stats",
        "revoked",
        "active_queues",
    )
}
