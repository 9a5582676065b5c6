"""Every error celeriac raises, under one root.

CeleriacError
├── ConfigurationError          bad setting, unknown option, bad URL, bad app reference
│   └── ImproperlyConfigured    (Celery's name, kept as an alias)
├── BrokerError                 the broker could not do what was asked
│   └── PublishError            a message was not enqueued (it is safe to send again)
├── BackendError                the result backend could not do what was asked
├── MessageError                a message that cannot be handled; it is dead-lettered
│   ├── MalformedMessage        not a celeriac message, or a body that does not decode
│   ├── ContentDisallowed       a serializer the app does not accept (pickle by default)
│   ├── SignatureMismatch       a signed app received a message with a wrong signature
│   └── MessageTooLarge         over the ``message_max_bytes`` limit
├── NotRegistered               a task name that no registered task has
├── TimeoutError                ``get()`` waited longer than its timeout
├── TaskError                   ``get()`` on a remote exception whose type is unknown here
├── ChordError                  a chord member failed, so the chord's body cannot run
├── TaskPredicate               control flow raised inside tasks (not failures)
│   ├── Retry                   ``self.retry()``: run again later
│   ├── Reject                  refuse the message: dead-letter it, or requeue it
│   └── Ignore                  leave no state and acknowledge
├── MaxRetriesExceededError     ``self.retry()`` with no retries left and no exception to raise
├── SoftTimeLimitExceeded       raised inside a task at its soft time limit
├── TimeLimitExceeded           recorded when a task is killed at its hard time limit
├── WorkerLostError             the process running a task died
└── TaskRevokedError            ``get()`` on a revoked task
"""

from __future__ import annotations

import builtins
import datetime
from typing import Any


class CeleriacError(Exception):
    """The root of every error celeriac raises."""


class ConfigurationError(CeleriacError):
    """A setting, option, URL or app reference that celeriac cannot use."""


ImproperlyConfigured = ConfigurationError


class BrokerError(CeleriacError):
    """The broker could not do what was asked (it is down, or refused the operation)."""


class PublishError(BrokerError):
    """A message was not enqueued; sending it again is safe."""


class BackendError(CeleriacError):
    """The result backend could not do what was asked."""


class MessageError(CeleriacError):
    """A message that cannot be handled; the worker dead-letters it with this error's text."""


class MalformedMessage(MessageError):
    """Bytes that are not a celeriac message, or a body that does not decode."""


class ContentDisallowed(MessageError):
    """A message serialized with a content type that the app does not accept."""


class SignatureMismatch(MessageError):
    """A message whose signature does not match the app's signing key."""


class MessageTooLarge(MessageError):
    """A message over the ``message_max_bytes`` limit."""


class NotRegistered(CeleriacError, KeyError):
    """A task name that no task of this app is registered under."""

    def __str__(self) -> str:
        return Exception.__str__(self)


class TimeoutError(CeleriacError, builtins.TimeoutError):
    """Waiting for a result took longer than the timeout."""


class TaskError(CeleriacError):
    """A task failed with an exception whose type cannot be imported here.

    ``exc_type`` holds the remote exception's qualified name.
    """

    def __init__(self, exc_type: str, message: str) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type


class ChordError(CeleriacError):
    """A member of a chord's header failed, so the chord's body cannot run."""


class TaskPredicate(CeleriacError):
    """Control flow raised inside a task; not a failure of the task."""


class Retry(TaskPredicate):
    """Raised by ``Task.retry()``: the task runs again after ``when``.

    Attributes:
        exc: the exception that caused the retry, if any.
        when: seconds to wait, or an absolute ``datetime``.
    """

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | datetime.datetime | None = None,
        *,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.exc = exc
        self.when = when
        self.retry_args = args
        self.retry_kwargs = kwargs
        self.options = options or {}
        super().__init__(message or self._describe())

    def _describe(self) -> str:
        reason = f": {self.exc!r}" if self.exc is not None else ""
        when = f" in {self.when}s" if isinstance(self.when, int | float) else ""
        return f"Retry{when}{reason}"


class Reject(TaskPredicate):
    """Refuse the message: dead-letter it (``requeue=False``) or give it back to the queue."""

    def __init__(self, reason: object = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason)


class Ignore(TaskPredicate):
    """Acknowledge the message and record no state for the task."""


class MaxRetriesExceededError(CeleriacError):
    """``Task.retry()`` was called with no retries left and no exception to re-raise."""


class SoftTimeLimitExceeded(CeleriacError):
    """Raised inside a task when it reaches its soft time limit."""


class TimeLimitExceeded(CeleriacError):
    """A task ran past its hard time limit and its process was killed."""


class WorkerLostError(CeleriacError):
    """The process that ran a task died before reporting an outcome."""


class TaskRevokedError(CeleriacError):
    """The task was revoked (or expired) before it could finish."""
