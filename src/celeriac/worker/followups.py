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
from celeriac.backends.base import ResultRecord
from celeriac.canvas.engine import FOLLOWED, TRANSIENT, caused_by, follow_up
from celeriac.execution import Action, Outcome
from celeriac.message import Message
from celeriac.worker.held import Held

if TYPE_CHECKING:
    from celeriac.app import Celeriac

log = logging.getLogger("celeriac.worker")
FINAL = (states.SUCCESS, states.FAILURE, states.REVOKED)
_ENDS_LATER = (Action.RETRY, Action.REQUEUE, Action.GIVE_BACK)  # it runs again: not over yet


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

    def run(self, settled: Sequence[Held]) -> None:
        """Do the follow-ups of the messages whose outcome is final (call it after their
        results are stored).

        The state followed is the one the backend holds, read back in one call: when a task
        ran twice, its first final state is kept, and its workflow must not take a second path
        from the other run's outcome.

        Raises:
            BrokerError, BackendError: the store cannot be reached (the batch is tried again).
        """
        found = [held for held in settled if _ends_a_step(held)]
        if not found:
            return
        stored = self.app.backend.get_many([h.task_id or "" for h in found])
        for held in found:
            message, outcome = held.message, held.outcome
            assert message is not None and outcome is not None
            record = stored.get(message.id)
            if record is None or not record.ready:  # not stored (ignore_result): as it ran
                record = ResultRecord(
                    message.id, outcome.state, outcome.payload, outcome.content_type
                )
            try:
                follow_up(self.app, message, record)
            except TRANSIENT:
                raise
            except Exception:  # a bug or a corrupt workflow must not block the worker forever
                log.exception("follow-ups of %s[%s] failed", message.task, message.id)


def _ends_a_step(held: Held) -> bool:
    """True when ``held`` is a workflow's task that reached a final state here."""
    message, outcome = held.message, held.outcome
    if message is None or outcome is None or not outcome.record:
        return False  # not a message, or ignored (Ignore) or requeued (Reject): no end yet
    if not any(key in message.workflow for key in FOLLOWED):
        return False  # no workflow, or only markers for the call itself
    return held.action not in _ENDS_LATER and outcome.state in FINAL
