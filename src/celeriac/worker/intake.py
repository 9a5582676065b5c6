"""Checking a fetched message before anything runs it.

A message that cannot or must not run is settled here, in the main process, with a reason:
malformed bytes, a wrong signature, a content type the app refuses, a size over the limit, an
unknown task name, or a message that has already killed its process too often all go to the
dead-letter store, and a FAILURE is recorded so that nobody waits for it forever. A revoked or
expired message is acknowledged and recorded as REVOKED.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from celeriac import states
from celeriac.brokers.base import Delivery
from celeriac.exceptions import (
    CeleriacError,
    ContentDisallowed,
    MessageTooLarge,
    NotRegistered,
    TaskRevokedError,
    WorkerLostError,
)
from celeriac.execution import Outcome, failure
from celeriac.message import Message
from celeriac.serialization import Serializer
from celeriac.task import Task


@dataclass(frozen=True)
class Refusal:
    """Why a message will not run: dead-letter it, or (``revoked``) just acknowledge it."""

    outcome: Outcome
    dead_letter: bool
    message: Message | None = None


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

    def check(self, delivery: Delivery, revoked: Container[str]) -> Message | Refusal:
        """The decoded message when it may run, else the reason it may not.

        ``revoked`` holds the ids of revoked tasks.
        """
        try:
            message = self._decode(delivery)
        except CeleriacError as exc:
            return Refusal(failure(exc), dead_letter=True)
        if delivery.attempt > self.max_deliveries:
            lost = WorkerLostError(
                f"handed out {delivery.attempt - 1} times and the process running it died "
                f"each time (task_max_deliveries={self.max_deliveries})"
            )
            return Refusal(failure(lost), dead_letter=True, message=message)
        if message.id in revoked:
            return Refusal(
                failure(TaskRevokedError("revoked"), state=states.REVOKED), False, message
            )
        if message.expires is not None and message.expires < self.clock():
            return Refusal(
                failure(TaskRevokedError("expired"), state=states.REVOKED), False, message
            )
        return message

    def _decode(self, delivery: Delivery) -> Message:
        if len(delivery.body) > self.max_bytes:
            raise MessageTooLarge(
                f"message is {len(delivery.body)} bytes, over message_max_bytes ({self.max_bytes})"
            )
        message = Message.decode(delivery.body)
        message.verify(self.serializer)
        if message.content_type not in self.serializer.accept:
            raise ContentDisallowed(
                f"content type {message.content_type!r} is not accepted "
                f"(accept_content allows {sorted(self.serializer.accept)})"
            )
        if message.task not in self.tasks:
            raise NotRegistered(f"task {message.task!r} is not registered with this worker")
        return message
