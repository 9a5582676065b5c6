"""Retries in one place: when a call runs again, with what, and the message that carries it.

``self.retry()`` (or ``autoretry_for``) raises ``Retry`` inside the task (``Task.retry``); the
run becomes a RETRY outcome whose :class:`RetryPlan` says when and with what
(:func:`plan_for`); the worker's main process, after storing the RETRY state, requeues the
delivery with :func:`retried_message` at its ETA, so the retry waits in the broker, not in a
worker. ``task.apply()`` runs it again at once, as Celery's eager mode does. Middleware sees a
retry in ``on_retry`` (where the task ran) and ``after_settle`` (in the worker).
"""

from __future__ import annotations

import datetime
import math
import random
from dataclasses import dataclass, field, replace
from typing import Any

from celeriac.exceptions import ConfigurationError, Retry
from celeriac.message import Message
from celeriac.serialization import Serializer


def backoff_delay(factor: float, retries: int, maximum: float, jitter: bool) -> float:
    """Celery's exponential backoff: ``factor * 2**retries`` capped, with optional full jitter."""
    delay = min(maximum, factor * (2**retries))
    return random.uniform(0, delay) if jitter else delay


@dataclass(frozen=True)
class RetryPlan:
    """When a retried call runs again, and what changes in its message.

    ``delay`` is measured on the broker's clock when the worker requeues the message; ``at``
    (epoch seconds, from an explicit ``eta``) replaces it. ``args`` and ``kwargs`` replace the
    call's own when given; ``options`` may change ``queue`` and ``priority``.
    """

    delay: float | None = None
    at: float | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)


def check_retry(when: float | datetime.datetime | None, options: dict[str, Any]) -> None:
    """Raise unless a retry's time and options can go in a message (``Task.retry`` calls it,
    so a bad value fails the task that asked, not the worker that would requeue it).

    Raises:
        ConfigurationError: ``when`` is not a datetime or a finite, non-negative number of
            seconds; ``priority`` is not 0-9; ``queue`` is not a non-empty string.
    """
    if when is not None and not isinstance(when, datetime.datetime) and not _seconds(when):
        raise ConfigurationError(f"a retry's countdown must be seconds (0 or more), not {when!r}")
    priority = options.get("priority")
    if priority is not None and not (
        isinstance(priority, int) and not isinstance(priority, bool) and 0 <= priority <= 9
    ):
        raise ConfigurationError(
            f"a retry's priority must be an integer from 0 to 9, not {priority!r}"
        )
    queue = options.get("queue")
    if queue is not None and not (isinstance(queue, str) and queue):
        raise ConfigurationError(f"a retry's queue must be a queue name, not {queue!r}")


def _seconds(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def plan_for(retry: Retry, default_delay: float) -> RetryPlan:
    """The plan that a raised ``Retry`` asks for (naive datetimes are UTC)."""
    when = retry.when
    delay: float | None
    at: float | None = None
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        delay, at = None, when.timestamp()
    else:
        delay = default_delay if when is None else float(when)
    args = None if retry.retry_args is None else list(retry.retry_args)
    return RetryPlan(delay, at, args, retry.retry_kwargs, dict(retry.options))


def retried_message(
    message: Message, plan: RetryPlan, serializer: Serializer, now: float
) -> Message:
    """The signed message that replaces ``message`` for its next run: one more retry, its
    ETA, and the arguments and routing the plan changes (``now`` is the broker's clock).

    Raises:
        MalformedMessage: the old body must be decoded (new ``args`` or ``kwargs`` only) and
            does not decode.
    """
    eta = plan.at if plan.at is not None else now + (plan.delay or 0.0)
    changes: dict[str, Any] = {"retries": message.retries + 1, "eta": eta}
    if plan.args is not None or plan.kwargs is not None:
        old_args, old_kwargs = message.arguments(serializer)
        args = plan.args if plan.args is not None else old_args
        kwargs = plan.kwargs if plan.kwargs is not None else old_kwargs
        changes["body"] = serializer.dumps([args, kwargs])
        changes["content_type"] = serializer.content_type
    for option in ("queue", "priority"):
        if plan.options.get(option) is not None:
            changes[option] = plan.options[option]
    return replace(message, **changes).signed(serializer)
