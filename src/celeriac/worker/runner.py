"""``TaskRunner``: what every pool does with a job, where the task runs (a prefork child, a pool
thread, or the worker's own thread for ``solo``): decode the arguments, run the task with the
middleware around it, return the outcome."""

from __future__ import annotations

from typing import Any

from celeriac.exceptions import CeleriacError
from celeriac.execution import Action, Outcome, execute, failure
from celeriac.message import decode_arguments
from celeriac.middleware import MiddlewareStack
from celeriac.serialization import Serializer
from celeriac.task import Task
from celeriac.worker.pool import Job


class TaskRunner:
    """Runs jobs of the tasks registered in ``tasks``."""

    def __init__(
        self,
        tasks: dict[str, Task[Any, Any]],
        serializer: Serializer,
        middleware: MiddlewareStack,
    ) -> None:
        self.tasks = tasks
        self.serializer = serializer
        self.middleware = middleware

    def run(self, job: Job) -> Outcome:
        """Decode the job's arguments and run it; a body that does not decode asks for its
        message to be dead-lettered."""
        try:
            args, kwargs = decode_arguments(self.serializer, job.content_type, job.body)
        except CeleriacError as exc:
            return failure(exc, action=Action.DEAD_LETTER)
        request = job.request
        request.args, request.kwargs = args, kwargs
        task = self.tasks[job.task]
        return execute(task, request, args, kwargs, self.serializer, self.middleware)
