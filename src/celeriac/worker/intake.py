"""Checking a fetched message before anything reads it.

The checks run in this order, each before anything reads what the next one checks: the size;
the signature, on the raw bytes, when the app signs; the header, parsed and held against the
schema (``celeriac.headers``); a compressed body decompressed, to ``message_max_bytes`` at most
(a compression bomb is refused here); then the content type, the task name and how many
processes the message has already killed. A message that fails one is refused here, in the
main process, with a reason that names what is wrong: it goes to the dead-letter store and
never reaches the pool. A FAILURE is recorded under its task id so that nobody waits for it
forever, but only under an id the worker can trust: never for a message whose signature does
not verify (a forger must not choose another task's result), nor, when the app signs, for one
too big to check. A revoked or expired message is acknowledged and recorded as REVOKED.

Celery's ``task_unknown`` (a message for a task this worker does not have: ``message``,
``exc``, ``name``, ``id``) and ``task_rejected`` (any other refusal: ``message``, ``exc``) are
sent here, with ``sender`` None; ``message`` is the decoded ``Message``, or the ``Delivery``
when the bytes did not decode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container
from dataclasses import replace
from typing import Any

from celeriac import signals, states
from celeriac.exceptions import (
    CeleriacError,
    ContentDisallowed,
    MessageTooLarge,
    NotRegistered,
    SignatureMismatch,
    TaskRevokedError,
    WorkerLostError,
)
from celeriac.execution import Action, failure
from celeriac.message import Message, open_message
from celeriac.serialization import Serializer
from celeriac.task import Task
from celeriac.worker.held import Held


class Intake:
    """The checks a message passes before it becomes a job."""

    def __init__(
        self,
        tasks: dict[str, Task[Any, Any]],
        serializer: Serializer,
        *,
        max_bytes: int,
        max_deliveries: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tasks = tasks
        self.serializer = serializer
        self.max_bytes = max_bytes
        self.max_deliveries = max_deliveries
        self.clock = clock  # the broker's: expiry is judged on the clock that schedules

    def check(self, held: Held, revoked: Container[str]) -> bool:
        """True when ``held`` may run (it then waits for a process); otherwise it is refused,
        with the reason as its outcome. ``revoked`` holds the ids of revoked tasks."""
        raw = held.delivery.body
        try:
            if len(raw) > self.max_bytes:
                raise MessageTooLarge(
                    f"message is {len(raw)} bytes, over message_max_bytes ({self.max_bytes})"
                )
            message = open_message(raw, self.serializer, max_bytes=self.max_bytes)
        except CeleriacError as exc:
            # When the app signs, bytes that did not prove where they come from (a wrong
            # signature, or too big to check) name no task whose result we may write.
            unproven = isinstance(exc, SignatureMismatch | MessageTooLarge)
            self._refuse(held, exc, record=not (self.serializer.key and unproven))
            _send_refused(held.delivery, exc)
            return False
        held.message = message
        try:
            self._check(message, held.delivery.attempt)
        except CeleriacError as exc:
            self._refuse(held, exc, record=True)
            _send_refused(message, exc)
            return False
        expired = message.expires is not None and message.expires < self.clock()
        if message.id in revoked or expired:
            held.expired = expired and message.id not in revoked
            reason = TaskRevokedError("expired" if held.expired else "revoked")
            held.refused(failure(reason, state=states.REVOKED), Action.ACK)
            return False
        held.checked(message)
        return True

    @staticmethod
    def _refuse(held: Held, exc: CeleriacError, *, record: bool) -> None:
        outcome = failure(exc, action=Action.DEAD_LETTER)
        held.refused(replace(outcome, record=record), Action.DEAD_LETTER)

    def _check(self, message: Message, attempt: int) -> None:
        """Raise when a sound message must still not run here."""
        if message.content_type not in self.serializer.accept:
            raise ContentDisallowed(
                f"content type {message.content_type!r} is not accepted "
                f"(accept_content allows {sorted(self.serializer.accept)})"
            )
        if message.task not in self.tasks:
            raise NotRegistered(f"task {message.task!r} is not registered with this worker")
        if attempt > self.max_deliveries:
            raise WorkerLostError(
                f"handed out {attempt - 1} times and the process running it died "
                f"each time (task_max_deliveries={self.max_deliveries})"
            )


def _send_refused(message: object, exc: CeleriacError) -> None:
    """Celery's ``task_unknown`` for a task not registered here, else ``task_rejected``."""
    if isinstance(exc, NotRegistered) and isinstance(message, Message):
        if signals.task_unknown.has_receivers():
            signals.task_unknown.send(
                sender=None, message=message, exc=exc, name=message.task, id=message.id
            )
    elif signals.task_rejected.has_receivers():
        signals.task_rejected.send(sender=None, message=message, exc=exc)
