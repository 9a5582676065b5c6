"""``TaskRunner``: what every pool does with a job, where the task runs (a prefork child, a pool
thread, or the worker's own thread for ``solo``): decode the arguments, run the task with the
middleware around it, return the outcome.

A prefork child gets a job as its ``JobWire`` (the message's bytes and where it came from) and
decodes the message itself: that work is done in the children, beside the task, rather than in
the main process, which is the worker's bottleneck.
"""

from __future__ import annotations

from typing import Any

from celeriac.compression import DEFAULT_MAX_BYTES
from celeriac.exceptions import CeleriacError
from celeriac.execution import Action, Outcome, execute, failure
from celeriac.message import Message, decode_arguments
from celeriac.middleware import MiddlewareStack
from celeriac.request import request_for
from celeriac.serialization import Serializer
from celeriac.task import Task
from celeriac.worker.pool import Job, JobWire


class TaskRunner:
    """Runs jobs of the tasks registered in ``tasks``, on the worker named ``hostname``."""

    def __init__(
        self,
        tasks: dict[str, Task[Any, Any]],
        serializer: Serializer,
        middleware: MiddlewareStack,
        *,
        hostname: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.tasks = tasks
        self.serializer = serializer
        self.middleware = middleware
        self.hostname = hostname
        self.max_bytes = max_bytes

    def run(self, job: Job) -> Outcome:
        """Run a job from its decoded message (the threads and solo pools)."""
        return self._run(job.message, job.queue, job.attempt, job.binding)

    def run_wire(self, wire: JobWire) -> Outcome:
        """Decode the message of a job sent to a prefork child, and run it.

        The main process checked the bytes before it sent them (``Intake``), so a message that
        does not decode here means it changed on the way: its message is dead-lettered.
        """
        _, raw, queue, attempt, binding, _, _ = wire
        try:
            message = Message.decode(raw, max_bytes=self.max_bytes, checked=True)
        except CeleriacError as exc:
            return failure(exc, action=Action.DEAD_LETTER)
        return self._run(message, queue, attempt, binding)

    def _run(
        self, message: Message, queue: str, attempt: int, binding: tuple[str, str] | None
    ) -> Outcome:
        """Decode the arguments and run the task; a body that does not decode asks for its
        message to be dead-lettered."""
        try:
            args, kwargs = decode_arguments(self.serializer, message.content_type, message.body)
        except CeleriacError as exc:
            return failure(exc, action=Action.DEAD_LETTER)
        request = request_for(
            message, hostname=self.hostname, queue=queue, attempt=attempt, binding=binding
        )
        request.args, request.kwargs = args, kwargs
        task = self.tasks[message.task]
        return execute(task, request, args, kwargs, self.serializer, self.middleware)
