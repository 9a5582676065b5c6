"""Recording outcomes and settling messages, in one broker batch a turn, in the order that loses
nothing.

For each batch: first make sure the leases are still ours (a worker that froze past its lease
must not record anything: another worker has the message now), then store the results, run the
workflow follow-ups, then settle the messages (ack, requeue, retry or dead-letter). Where the
broker can (``Broker.batch``: SQLite with its own result table) all of it, and the fetch of the
next messages, is one transaction; elsewhere a crash between the steps leaves a stored result
and an unsettled message, which runs again: at least once, never lost.

When the store cannot be reached, the batch is kept (``backlog``) and tried again with backoff;
meanwhile the worker takes no new work, and the leases of what it keeps are still renewed.

Task events (``middleware/events.py``) stay off this path: each turn hands the events
buffered since the last one (received, started, and the outcomes settled last turn) to the
worker's events process (``worker/history_process.py``), which appends them to the backend's
event log with a connection of its own, so that they never hold up a result or a message
(``drain()``: to a ``HistoryWriter`` in this process, ``worker/history_writer.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.brokers.base import Delivery
from celeriac.canvas.plan import publish
from celeriac.compression import decompress, split_content_type
from celeriac.exceptions import MalformedMessage
from celeriac.execution import Action, Outcome
from celeriac.message import peek_id
from celeriac.middleware.events import EventBuffer, EventOptions
from celeriac.retries import retried_message
from celeriac.serialization import JSON, exception_info
from celeriac.worker.followups import Followups
from celeriac.worker.held import Held, Stage
from celeriac.worker.history_process import HistoryProcess
from celeriac.worker.history_writer import HistoryWriter

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

log = logging.getLogger("celeriac.worker")
MIN_RETRY_DELAY, MAX_RETRY_DELAY = 0.1, 2.0  # seconds between tries to record a batch


class Recorder:
    """Stores outcomes and settles messages for one worker; see the module docstring."""

    def __init__(self, worker: Worker) -> None:
        app = worker.app
        self.worker = worker
        self.app = app
        self.broker, self.backend, self.serializer = app.broker, app.backend, app.serializer
        self.keeper = worker.keeper
        self.middleware = app.middleware
        self.expires = app.conf.seconds("result_expires")
        self.followups = Followups(app)  # workflows: what comes after a task (canvas.engine)
        self.backlog: list[Held] = []  # outcomes the store refused, kept to be tried again
        self.settled = 0  # how many messages were settled so far
        self._retry_at = 0.0
        self._delay = MIN_RETRY_DELAY
        options = EventOptions.from_settings(app.conf)
        self.events = EventBuffer(options, worker.hostname, app.broker.clock)
        retention, hostname = self.events.options.retention, worker.hostname

        def append(frames: Sequence[bytes]) -> None:
            self.backend.append_events(hostname, frames, retention=retention)

        self._append_events = append
        # drain() appends the events from this process; a running worker, from a process of
        # its own (start_history_process)
        self.history: HistoryWriter | HistoryProcess = HistoryWriter(
            append, f"history-{worker.hostname}"
        )

    def start_history_process(self) -> None:
        """Write the task events from a process of their own from now on (``Worker.run``,
        before the pool starts: see ``HistoryProcess.start``)."""
        self.history = HistoryProcess(self._append_events, self.history.name)
        self.history.start()

    def wait_time(self, timeout: float) -> float:
        """How long the worker may wait for news before the backlog is due again."""
        if not self.backlog:
            return timeout
        return min(timeout, max(0.0, self._retry_at - time.monotonic()))

    def record(
        self,
        finished: Sequence[Held],
        fetch: Callable[[], list[Delivery]] | None = None,
        *,
        keep: bool = True,
    ) -> list[Delivery]:
        """Record and settle ``finished`` (with the backlog, once it is due) in one broker
        batch, in which ``fetch`` leases the next messages; returns what it fetched.

        With ``keep``, a store error keeps the batch in the backlog (what was fetched is let go:
        its leases run out); without it, the error is raised.

        Raises:
            BrokerError: ``fetch`` failed with nothing to record.
            BrokerError, BackendError: the store failed and ``keep`` is False.
        """
        self.backlog.extend(finished)
        self._hand_over_events()
        if not self.backlog:
            return fetch() if fetch is not None else []
        if time.monotonic() < self._retry_at:
            return []
        batch, self.backlog = self.backlog, []
        fresh: list[Delivery] = []
        settling = [h.delivery for h in batch]
        try:
            kept = self._ours(batch)
            self.keeper.settling(settling)  # the batch's acks may beat an extension
            with self.broker.batch():
                refused = self._write(kept)
                if fetch is not None:
                    fresh = fetch()
        except Exception as exc:  # any store error: kept and retried, nothing is lost
            self.keeper.unsettled(settling)
            self.keeper.release(fresh)
            if not keep:
                raise
            self._keep(batch, exc)
            return []
        self._delay = MIN_RETRY_DELAY
        self._done(batch, kept, refused)
        return fresh

    def _hand_over_events(self) -> None:
        """Give the events buffered so far to the events process (or the history writer),
        which appends them to the backend's event log."""
        if self.events.enabled:
            self.events.started(self.worker.dispatcher.running.values())
            self.history.submit_rows(self.events.take())

    def write_events(self) -> None:
        """Write the pending events now, in this thread (a drain ended, the worker stops)."""
        self._hand_over_events()
        self.history.flush()

    def flush(self, deadline: float) -> None:
        """Keep trying to record the backlog until ``deadline`` (the worker is stopping)."""
        while self.backlog and time.monotonic() < deadline:
            time.sleep(max(0.0, min(self._retry_at, deadline) - time.monotonic()))
            self.record([])
        if self.backlog:
            log.error(
                "%d outcomes could not be recorded; their messages will run again",
                len(self.backlog),
            )

    def _keep(self, batch: list[Held], exc: Exception) -> None:
        self.backlog = [h for h in batch if h.stage is not Stage.LOST] + self.backlog
        log.error(
            "could not record %d outcomes (retrying in %.1fs): %s", len(batch), self._delay, exc
        )
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, MAX_RETRY_DELAY)

    def _ours(self, batch: Sequence[Held]) -> list[Held]:
        """The messages whose leases are still ours (and those acknowledged early)."""
        leased = [h for h in batch if not h.early_acked]
        ours = self.keeper.confirm([h.delivery for h in leased])
        kept = [h for h in batch if h.early_acked]
        for held, mine in zip(leased, ours, strict=True):
            if mine:
                kept.append(held)
            else:
                log.warning(
                    "discarding the outcome of message %s: its lease was lost", held.delivery.tag
                )
                held.lost()
        return kept

    def _write(self, kept: Sequence[Held]) -> list[Held]:
        """Store, follow up and settle; returns the messages the broker refused to settle (their
        leases ran out between the check and now: another worker may hold them)."""
        records = [r for h in kept if h.record and (r := self._result(h)) is not None]
        self.backend.store_many(records, expires=self.expires)
        self.followups.run(kept)  # after storing, before acking: never lost
        acked = [h for h in kept if h.action is Action.ACK]
        flags = self.broker.ack_many([h.delivery for h in acked])
        refused = [h for h, ok in zip(acked, flags, strict=True) if not ok]
        return refused + [h for h in kept if h.action is not Action.ACK and not self._settle(h)]

    def _done(self, batch: Sequence[Held], kept: Sequence[Held], refused: list[Held]) -> None:
        for held in kept:
            if any(held is r for r in refused):
                log.warning(
                    "message %s was not settled here: its lease ran out meanwhile",
                    held.delivery.tag,
                )
                held.lost()
                continue
            held.settled()
            _log(held)
            self.middleware.after_settle(self.worker, held)  # TaskEvents buffers its event
        self.settled += len(kept) - len(refused)
        self.keeper.release([h.delivery for h in batch])

    def _result(self, held: Held) -> ResultRecord | None:
        message, outcome = held.message, held.outcome
        assert outcome is not None
        task_id = message.id if message is not None else peek_id(held.delivery.body)
        if task_id is None:
            return None
        meta: dict[str, Any] = {"worker": self.worker.hostname}
        if message is not None:
            meta["task"] = message.task
            children = [*outcome.children, *self.followups.children(message, outcome)]
            if children:
                meta["children"] = children
        return ResultRecord(
            task_id=task_id,
            state=outcome.state,
            payload=outcome.payload,
            content_type=outcome.content_type,
            date_done=time.time(),
            retries=message.retries if message is not None else 0,
            meta=meta,
        )

    def _settle(self, held: Held) -> bool:
        """Tell the broker what becomes of a message that is not simply acked; False when it
        refused (the lease was no longer ours)."""
        delivery, action, outcome = held.delivery, held.action, held.outcome
        assert outcome is not None
        if action is Action.REQUEUE:
            return self.broker.requeue(delivery)
        if action is Action.GIVE_BACK:
            return self.broker.requeue(delivery, message=held.message)
        if action is Action.DEAD_LETTER:
            return self.broker.dead_letter(delivery, outcome.reason)
        if action is Action.RETRY:
            assert held.message is not None and outcome.retry is not None
            retry = retried_message(
                held.message, outcome.retry, self.serializer, self.broker.clock()
            )
            if not held.early_acked:
                return self.broker.requeue(delivery, message=retry, eta=retry.eta)
            self.broker.publish(retry)  # its message is gone: the retry is a new one
        if action is Action.REPLACE:
            # Published before the ack (in one transaction where the broker batches): a crash
            # in between runs the call again, which replaces it again; never lost.
            assert outcome.replacement is not None
            publish(self.app, outcome.replacement)
            return held.early_acked or self.broker.ack(delivery)
        return True


def _log(held: Held) -> None:
    message, outcome, action = held.message, held.outcome, held.action
    assert outcome is not None
    if (
        action in (Action.ACK, Action.ALREADY_ACKED)
        and outcome.record
        and outcome.state == states.SUCCESS
        and not log.isEnabledFor(logging.INFO)
    ):
        return  # the common case, said in no line at the default level: nothing to build
    name = f"{message.task}[{message.id}]" if message else f"message {held.delivery.tag}"
    if action is Action.DEAD_LETTER:
        log.error("%s dead-lettered: %s", name, outcome.reason)
    elif action is Action.RETRY:
        log.info("%s retry: %s", name, outcome.reason)
    elif action is Action.REPLACE:
        log.info("%s replaced by a new task", name)
    elif action in (Action.REQUEUE, Action.GIVE_BACK):
        log.info("%s given back to the queue", name)
    elif not outcome.record:
        log.info("%s ignored: %s", name, outcome.reason)
    elif outcome.state == states.SUCCESS and log.isEnabledFor(logging.INFO):
        log.info("%s succeeded in %.4fs: %s", name, outcome.runtime, _preview(outcome))
    elif outcome.state == states.REVOKED:
        log.info("%s revoked: %s", name, outcome.reason)
    elif outcome.state != states.SUCCESS:
        log.error("%s %s: %s%s", name, outcome.state.lower(), outcome.reason, _trace(outcome))


def _trace(outcome: Outcome) -> str:
    """The remote traceback of a task that raised, on lines of its own (as Celery logs it)."""
    info = exception_info(outcome.payload)
    text = str(info.get("traceback") or "")
    return "\n" + text.rstrip() if text.startswith("Traceback") else ""


PREVIEW = 200  # characters of a result that the "succeeded" line shows


def _preview(outcome: Outcome) -> str:
    """The start of a JSON result as text; a compressed one is opened (as far as it takes),
    and another serializer's bytes are only counted."""
    content_type, compression = split_content_type(outcome.content_type)
    payload = outcome.payload
    if compression is not None:
        try:
            payload = decompress(payload, compression, max_bytes=16 * PREVIEW)
        except MalformedMessage:  # longer than a preview needs, or not ours to read here
            return f"({len(payload)} bytes, {compression})"
    if content_type != JSON:
        return f"({len(payload)} bytes of {content_type})"
    text = payload[:PREVIEW].decode("utf-8", "replace")
    return text + ("..." if len(payload) > PREVIEW else "")
