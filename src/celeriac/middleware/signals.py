"""``CelerySignals``: the built-in middleware that sends Celery's signals, with Celery's arguments.

===========================  ==================  =============================================
signal                       sent from           arguments (besides ``sender``)
===========================  ==================  =============================================
``before_task_publish``      the sender          ``body``, ``exchange``, ``routing_key``,
                                                 ``headers``, ``properties``, ``declare``,
                                                 ``retry_policy`` (sender: the task name)
``after_task_publish``       the sender          ``body``, ``exchange``, ``routing_key``,
                                                 ``headers`` (sender: the task name)
``task_prerun``              where it runs       ``task_id``, ``task``, ``args``, ``kwargs``
``task_postrun``             where it runs       ... and ``retval``, ``state``
``task_success``             where it runs       ``result``
``task_failure``             where it runs       ``task_id``, ``exception``, ``args``,
                                                 ``kwargs``, ``traceback``, ``einfo``
``task_retry``               where it runs       ``request``, ``reason``, ``einfo``
``task_revoked``             the worker          ``request``, ``terminated``, ``signum``,
                                                 ``expired``
``task_received``            the worker          ``request`` (a message passed the checks)
``task_unknown``             the worker          ``message``, ``exc``, ``name``, ``id`` (sender:
                                                 None; sent by ``worker/intake.py``)
``task_rejected``            the worker          ``message``, ``exc`` (sender: None; any other
                                                 refused message, from ``worker/intake.py``)
``celeryd_init``             the worker          ``instance`` (the worker), ``conf``,
                                                 ``options`` (sender: the node name; first,
                                                 so settings may still change; ``worker.py``)
``worker_init``              the worker          (sender: the worker; before the pool starts)
``worker_ready``             the worker          (sender: the worker)
``worker_shutdown``          the worker          (sender: the worker)
``worker_process_init``      each prefork child  (sender: None)
``worker_process_shutdown``  each prefork child  ``pid``, ``exitcode`` (sender: None; not after
                                                 SIGKILL; ``worker/child.py``)
``beat_init``                beat                (sender: the beat)
``setup_logging``            the command line    ``loglevel``, ``logfile``, ``format``,
                                                 ``colorize``; when connected, the command
                                                 configures no logging itself (``cli/logs.py``)
``after_setup_logger``       the command line    ``logger``, and the same
``after_setup_task_logger``  the command line    ``logger`` (``celeriac.task``), and the same
===========================  ==================  =============================================

The task signals' ``sender`` is the task object. ``headers`` holds Celery's protocol-2 header
names (``id``, ``task``, ``eta``, ``retries``, ``root_id``...) and the message's own headers; a
``before_task_publish`` receiver may add headers, and they travel with the message. Each signal
is checked for receivers first, so one nobody listens to costs next to nothing.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac import signals, states
from celeriac.middleware.base import Middleware
from celeriac.request import Request, request_for

if TYPE_CHECKING:
    from celeriac.beat import Beat
    from celeriac.execution import Outcome
    from celeriac.message import Message
    from celeriac.serialization import Serializer
    from celeriac.task import Task
    from celeriac.worker import Held, Worker


@dataclass(frozen=True)
class ExceptionInfo:
    """Celery's ``einfo``: an exception with its type, traceback object and formatted text."""

    exception: BaseException
    type: type[BaseException]
    tb: Any
    traceback: str

    @classmethod
    def of(cls, exc: BaseException) -> ExceptionInfo:
        """The info of a raised exception."""
        text = "".join(traceback.format_exception(exc))
        return cls(exc, type(exc), exc.__traceback__, text)


_STANDARD_HEADERS = frozenset(
    {"lang", "task", "id", "eta", "expires", "group", "retries", "timelimit", "root_id"}
    | {"parent_id", "ignore_result", "priority"}
)


def celery_headers(message: Message) -> dict[str, Any]:
    """The message's fields under Celery's protocol-2 header names, and its own headers."""
    return {
        "lang": "py",
        "task": message.task,
        "id": message.id,
        "eta": message.eta,
        "expires": message.expires,
        "group": message.group_id,
        "retries": message.retries,
        "timelimit": (message.time_limit, message.soft_time_limit),
        "root_id": message.root_id,
        "parent_id": message.parent_id,
        "ignore_result": message.ignore_result,
        "priority": message.priority,
        **message.headers,
    }


class CelerySignals(Middleware):
    """Sends Celery's signals; see the module docstring. ``serializer`` is the app's (a
    callable, so that settings changed after the app was made are seen)."""

    def __init__(self, serializer: Any) -> None:
        self._serializer = serializer

    # -- the client ---------------------------------------------------------------------------
    def _body(self, message: Message) -> tuple[Any, ...] | None:
        serializer: Serializer = self._serializer()
        try:
            args, kwargs = message.arguments(serializer)
        except Exception:  # an observer must not stop the send; the body is simply not shown
            return None
        workflow = message.workflow
        embed = {
            "callbacks": workflow.get("link"),
            "errbacks": workflow.get("link_error"),
            "chain": workflow.get("chain"),
            "chord": workflow.get("chord"),
        }
        return (args, kwargs, embed)

    def before_publish(self, message: Message) -> None:
        """``before_task_publish``; headers a receiver adds go into the message."""
        if not signals.before_task_publish.has_receivers():
            return
        headers = celery_headers(message)
        signals.before_task_publish.send(
            sender=message.task,
            body=self._body(message),
            exchange="",
            routing_key=message.queue,
            headers=headers,
            properties={"priority": message.priority},
            declare=[],
            retry_policy=None,
        )
        for key, value in headers.items():
            if key not in _STANDARD_HEADERS:
                message.headers[key] = value

    def after_publish(self, message: Message) -> None:
        """``after_task_publish``."""
        if signals.after_task_publish.has_receivers():
            signals.after_task_publish.send(
                sender=message.task,
                body=self._body(message),
                exchange="",
                routing_key=message.queue,
                headers=celery_headers(message),
            )

    # -- the worker ---------------------------------------------------------------------------
    def worker_start(self, worker: Worker) -> None:
        """``worker_ready``."""
        signals.worker_ready.send(sender=worker)

    def worker_stop(self, worker: Worker) -> None:
        """``worker_shutdown``."""
        signals.worker_shutdown.send(sender=worker)

    def after_fetch(self, worker: Worker, held: Held) -> None:
        """``task_received``, with the request the task will run with."""
        message = held.message
        if message is None or not signals.task_received.has_receivers():
            return
        signals.task_received.send(sender=worker, request=_request(worker, held, message))

    def after_settle(self, worker: Worker, held: Held) -> None:
        """``task_revoked``, for a message revoked, expired or terminated."""
        outcome, message = held.outcome, held.message
        if outcome is None or outcome.state != states.REVOKED or message is None:
            return
        if not signals.task_revoked.has_receivers():
            return
        request = _request(worker, held, message)
        signals.task_revoked.send(
            sender=worker.app.tasks.get(message.task, message.task),
            request=request,
            terminated=held.terminated,
            signum=held.signum,
            expired=held.expired,
        )

    # -- where tasks run -------------------------------------------------------------------------
    def child_start(self) -> None:
        """``worker_process_init``."""
        signals.worker_process_init.send(sender=None)

    def before_execute(self, task: Task[Any, Any], request: Request) -> None:
        """``task_prerun``."""
        if signals.task_prerun.has_receivers():
            signals.task_prerun.send(
                sender=task, task_id=request.id, task=task, args=request.args, kwargs=request.kwargs
            )

    def on_retry(self, task: Task[Any, Any], request: Request, reason: BaseException) -> None:
        """``task_retry``."""
        if signals.task_retry.has_receivers():
            einfo = ExceptionInfo.of(reason)
            signals.task_retry.send(sender=task, request=request, reason=reason, einfo=einfo)

    def on_failure(self, task: Task[Any, Any], request: Request, exc: BaseException) -> None:
        """``task_failure``."""
        if signals.task_failure.has_receivers():
            signals.task_failure.send(
                sender=task,
                task_id=request.id,
                exception=exc,
                args=request.args,
                kwargs=request.kwargs,
                traceback=exc.__traceback__,
                einfo=ExceptionInfo.of(exc),
            )

    def after_execute(
        self, task: Task[Any, Any], request: Request, outcome: Outcome, value: Any
    ) -> None:
        """``task_success`` (when it succeeded), then ``task_postrun``."""
        if outcome.state == states.SUCCESS and signals.task_success.has_receivers():
            signals.task_success.send(sender=task, result=value)
        if signals.task_postrun.has_receivers():
            signals.task_postrun.send(
                sender=task,
                task_id=request.id,
                task=task,
                args=request.args,
                kwargs=request.kwargs,
                retval=value,
                state=outcome.state,
            )

    # -- beat -----------------------------------------------------------------------------------
    def beat_start(self, beat: Beat) -> None:
        """``beat_init``."""
        signals.beat_init.send(sender=beat)


def _request(worker: Worker, held: Held, message: Message) -> Request:
    """The request a held message's task runs (or would have run) with, for a signal."""
    delivery = held.delivery
    return request_for(
        message, hostname=worker.hostname, queue=delivery.queue, attempt=delivery.attempt
    )
