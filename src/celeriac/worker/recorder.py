"""Recording outcomes and settling messages, in batches, in the order that loses nothing.

For each batch: first make sure the leases are still ours (a worker that froze past its lease
must not record anything: another worker has the message now), then store the results, then
settle the messages (ack, requeue for a retry, or dead-letter). Where the broker can
(``Broker.batch``: SQLite with its own result table) the last two are one transaction; elsewhere a
crash between them leaves a stored result and an unsettled message, which runs again: at least
once, never lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from celeriac import states
from celeriac.backends.base import ResultBackend, ResultRecord
from celeriac.brokers.base import Broker, Delivery
from celeriac.exceptions import WorkerLostError
from celeriac.execution import IGNORED, REJECTED, Outcome, failure
from celeriac.message import Message, peek_id
from celeriac.serialization import Serializer
from celeriac.worker.followups import Followups
from celeriac.worker.leases import LeaseKeeper
from celeriac.worker.pool import UNDECODABLE

log = logging.getLogger("celeriac.worker")

ACK, REQUEUE, RETRY, DEAD_LETTER = "ack", "requeue", "retry", "dead_letter"
# A message handed back unstarted: its attempt count starts again, since no process died of it
# (a requeue after a death keeps the count, which is how a poisonous message is recognised).
GIVE_BACK = "give_back"
ALREADY_ACKED = "already_acked"  # acks_late=False: the message was acknowledged before it ran


@dataclass(frozen=True)
class Settlement:
    """One message's fate: what to store (if anything) and what to do with the message."""

    delivery: Delivery
    message: Message | None
    outcome: Outcome
    action: str
    record: bool = True


def settlement_for(
    delivery: Delivery,
    message: Message | None,
    outcome: Outcome,
    *,
    lost: bool,
    killed_by: str | None,
    max_deliveries: int,
) -> Settlement:
    """Decide what becomes of a message whose job ended this way."""
    if lost and killed_by in (None, "shutdown"):
        if killed_by is None and delivery.attempt >= max_deliveries:
            poison = WorkerLostError(
                f"{outcome.reason.removeprefix('WorkerLostError: ')}; the process running it "
                f"died on each of {delivery.attempt} deliveries (task_max_deliveries)"
            )
            return Settlement(delivery, message, failure(poison), DEAD_LETTER)
        return Settlement(delivery, message, outcome, REQUEUE, record=False)
    state = outcome.state
    if state == states.RETRY:
        return Settlement(delivery, message, outcome, RETRY)
    if state == REJECTED:
        if outcome.requeue:
            return Settlement(delivery, message, outcome, REQUEUE, record=False)
        return Settlement(delivery, message, outcome, DEAD_LETTER)
    if state == UNDECODABLE:
        return Settlement(delivery, message, outcome, DEAD_LETTER)
    if state == IGNORED:
        return Settlement(delivery, message, outcome, ACK, record=False)
    # As in Celery, ignore_result stores no state at all (the worker still logs failures).
    ignore = message is not None and message.ignore_result
    return Settlement(delivery, message, outcome, ACK, record=not ignore)


def _state_for(settlement: Settlement) -> str:
    state = settlement.outcome.state
    return state if state in states.ALL_STATES else states.FAILURE


class Recorder:
    """Stores outcomes and settles messages for one worker."""

    def __init__(
        self,
        broker: Broker,
        backend: ResultBackend,
        serializer: Serializer,
        keeper: LeaseKeeper,
        *,
        hostname: str,
        expires: float | None,
        followups: Followups | None = None,
    ) -> None:
        self.broker = broker
        self.backend = backend
        self.serializer = serializer
        self.keeper = keeper
        self.hostname = hostname
        self.expires = expires
        self.followups = followups  # workflows: what comes after a task (canvas.engine)

    def settle(self, batch: Sequence[Settlement]) -> None:
        """Record and settle a batch; see the module docstring.

        Raises:
            BrokerError, BackendError: the store cannot be reached (the messages stay leased
                until their leases run out, then run again).
        """
        if not batch:
            return
        leased = [s for s in batch if s.action != ALREADY_ACKED]
        ours = self.keeper.confirm([s.delivery for s in leased])
        kept = [s for s in batch if s.action == ALREADY_ACKED]
        for settlement, mine in zip(leased, ours, strict=True):
            if mine:
                kept.append(settlement)
            else:
                log.warning(
                    "discarding the outcome of message %s: its lease was lost",
                    settlement.delivery.tag,
                )
        records = [r for s in kept if s.record and (r := self._record(s)) is not None]
        with self.broker.batch():
            self.backend.store_many(records, expires=self.expires)
            if self.followups is not None:  # after storing, before acking: never lost
                self.followups.run(kept)
            self.broker.ack_many([s.delivery for s in kept if s.action == ACK])
            for settlement in kept:
                self._settle_one(settlement)
        for settlement in kept:
            self._log(settlement)
        self.keeper.release([s.delivery for s in batch])

    def _record(self, settlement: Settlement) -> ResultRecord | None:
        message, outcome = settlement.message, settlement.outcome
        task_id = message.id if message is not None else peek_id(settlement.delivery.body)
        if task_id is None:
            return None
        meta: dict[str, Any] = {"worker": self.hostname}
        if message is not None:
            meta["task"] = message.task
            children = list(outcome.children)
            if self.followups is not None:
                children += self.followups.children(message, outcome)
            if children:
                meta["children"] = children
        return ResultRecord(
            task_id=task_id,
            state=_state_for(settlement),
            payload=outcome.payload,
            content_type=outcome.content_type,
            date_done=time.time(),
            retries=message.retries if message is not None else 0,
            meta=meta,
        )

    def _settle_one(self, settlement: Settlement) -> None:
        delivery, action = settlement.delivery, settlement.action
        if action == REQUEUE:
            self.broker.requeue(delivery)
        elif action == GIVE_BACK:
            self.broker.requeue(delivery, message=settlement.message)
        elif action == DEAD_LETTER:
            self.broker.dead_letter(delivery, settlement.outcome.reason)
        elif action == RETRY:
            message, eta = self._retry_message(settlement)
            self.broker.requeue(delivery, message=message, eta=eta)

    def _retry_message(self, settlement: Settlement) -> tuple[Message, float | None]:
        message, outcome = settlement.message, settlement.outcome
        assert message is not None
        eta = outcome.retry_at
        if eta is None:
            eta = self.broker.clock() + (outcome.retry_delay or 0.0)
        changes: dict[str, Any] = {"retries": message.retries + 1, "eta": eta}
        if outcome.retry_args is not None or outcome.retry_kwargs is not None:
            old_args, old_kwargs = message.arguments(self.serializer)
            args = outcome.retry_args if outcome.retry_args is not None else old_args
            kwargs = outcome.retry_kwargs if outcome.retry_kwargs is not None else old_kwargs
            changes["body"] = self.serializer.dumps([args, kwargs])
            changes["content_type"] = self.serializer.content_type
        for option in ("queue", "priority"):
            if outcome.retry_options.get(option) is not None:
                changes[option] = outcome.retry_options[option]
        retried = replace(message, **changes).signed(self.serializer)
        return retried, eta

    def _log(self, settlement: Settlement) -> None:
        message, outcome, action = settlement.message, settlement.outcome, settlement.action
        name = f"{message.task}[{message.id}]" if message else f"message {settlement.delivery.tag}"
        if action == DEAD_LETTER:
            log.error("%s dead-lettered: %s", name, outcome.reason)
        elif action == RETRY:
            log.info("%s retry: %s", name, outcome.reason)
        elif action in (REQUEUE, GIVE_BACK):
            log.info("%s given back to the queue", name)
        elif outcome.state == states.SUCCESS and log.isEnabledFor(logging.INFO):
            log.info("%s succeeded in %.4fs: %s", name, outcome.runtime, _preview(outcome))
        elif outcome.state == states.REVOKED:
            log.info("%s revoked: %s", name, outcome.reason)
        elif outcome.state != states.SUCCESS:
            log.error("%s %s: %s", name, outcome.state.lower(), outcome.reason)


def _preview(outcome: Outcome) -> str:
    text = outcome.payload[:200].decode("utf-8", "replace")
    return text + ("..." if len(outcome.payload) > 200 else "")
