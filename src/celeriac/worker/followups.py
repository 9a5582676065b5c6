"""The worker's side of workflows: after outcomes are stored, do what comes next.

The ``Recorder`` calls :meth:`Followups.run` inside the broker batch that stores a batch of
outcomes, after storing and before acknowledging the messages, so a follow-up is never lost: a
crash before the ack runs the task again, and its follow-ups with it. What the follow-ups are
(the next step of a chain, links, errbacks, a chord's body, DAG nodes) is decided by
``celeriac.canvas.engine``, which needs nothing of the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from celeriac import states
from celeriac.canvas.engine import FOLLOWED, TRANSIENT, Finished, caused_by, follow_up
from celeriac.exceptions import CeleriacError
from celeriac.execution import IGNORED, Outcome
from celeriac.message import Message

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.worker.recorder import Settlement

log = logging.getLogger("celeriac.worker")
FINAL = (states.SUCCESS, states.FAILURE, states.REVOKED)


class Followups:
    """Runs the follow-ups of recorded outcomes for one worker's app."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app

    def children(self, message: Message, outcome: Outcome) -> list[str]:
        """Ids of the tasks the follow-ups of this outcome will send first (for the result's
        ``children``)."""
        if not message.workflow:
            return []
        try:
            return caused_by(message.workflow, outcome.state)
        except Exception:  # a workflow that cannot be read; run() reports it
            return []

    def run(self, settlements: Sequence[Settlement]) -> None:
        """Do the follow-ups of the settlements whose outcome is final (call it after their
        results are stored).

        The state followed is the one the backend holds, read back in one call: when a task
        ran twice, its first final state is kept, and its workflow must not take a second path
        from the other run's outcome.

        Raises:
            BrokerError, BackendError: the store cannot be reached (the batch is tried again).
        """
        found = [done for s in settlements if (done := self._finished(s)) is not None]
        if not found:
            return
        stored = self.app.backend.get_many([done.message.id for done in found])
        for done in found:
            record = stored.get(done.message.id)
            if record is not None and record.ready:
                done = Finished(done.message, record.state, record.payload, record.content_type)
            try:
                follow_up(self.app, done)
            except TRANSIENT:
                raise
            except Exception:  # a bug or a corrupt workflow must not block the worker forever
                log.exception("follow-ups of %s[%s] failed", done.message.task, done.message.id)

    def _finished(self, settlement: Settlement) -> Finished | None:
        outcome = settlement.outcome
        message = settlement.message or self._refused_message(settlement)
        if message is None or outcome.state == IGNORED:
            return None
        if not any(key in message.workflow for key in FOLLOWED):
            return None  # no workflow, or only markers for the call itself
        if not (settlement.record or message.ignore_result):
            return None  # given back, retried, or lost: it will end later
        state = outcome.state if outcome.state in states.ALL_STATES else states.FAILURE
        if state not in FINAL:
            return None
        return Finished(message, state, outcome.payload, outcome.content_type)

    def _refused_message(self, settlement: Settlement) -> Message | None:
        """The message of a delivery that the intake refused before keeping it (an unknown
        task, say), when its header is sound: its workflow must still end. One whose signature
        does not verify is not followed."""
        if not settlement.record:
            return None
        try:
            message = Message.decode(settlement.delivery.body)
            message.verify(self.app.serializer)
        except CeleriacError:
            return None
        return message
