"""Checking a fetched message before anything runs it.

A message that cannot or must not run is refused here, in the main process, with a reason:
malformed bytes, a wrong signature, a content type the app refuses, a size over the limit, an
unknown task name, or a message that has already killed its process too often all go to the
dead-letter store, and a FAILURE is recorded so that nobody waits for it forever. A revoked or
expired message is acknowledged and recorded as REVOKED.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container
from typing import Any

from celeriac import states
from celeriac.exceptions import (
    CeleriacError,
    ContentDisallowed,
    MessageTooLarge,
    NotRegistered,
    TaskRevokedError,
    WorkerLostError,
)
from celeriac.execution import Action, failure
from celeriac.message import Message
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
        try:
            message = self._decode(held)
        except CeleriacError as exc:
            held.refused(failure(exc, action=Action.DEAD_LETTER), Action.DEAD_LETTER)
            return False
        held.message = message
        try:
            self._check(message, len(held.delivery.body), held.delivery.attempt)
        except CeleriacError as exc:
            held.refused(failure(exc, action=Action.DEAD_LETTER), Action.DEAD_LETTER)
            return False
        expired = message.expires is not None and message.expires < self.clock()
        if message.id in revoked or expired:
            held.expired = expired and message.id not in revoked
            reason = TaskRevokedError("expired" if held.expired else "revoked")
            held.refused(failure(reason, state=states.REVOKED), Action.ACK)
            return False
        held.checked(message)
        return True

    def _decode(self, held: Held) -> Message:
        """The message, when its bytes are one and its signature is right."""
        message = Message.decode(held.delivery.body)
        message.verify(self.serializer)
        return message

    def _check(self, message: Message, size: int, attempt: int) -> None:
        """Raise when a sound message must still not run here."""
        if size > self.max_bytes:
            raise MessageTooLarge(
                f"message is {size} bytes, over message_max_bytes ({self.max_bytes})"
            )
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
