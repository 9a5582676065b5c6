"""Middleware for the tests: ``HookLog`` writes down every hook it sees, ``Broken`` raises.

``HookLog`` appends "<hook> <task id> <pid>" to a file (O_APPEND writes this small are atomic,
so the log is exact across a worker's processes); the tests read the hooks of each task id in
order. Both are used in the test process and, through tests/apps/hooked.py, in real workers.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from celeriac.middleware import Middleware

if TYPE_CHECKING:
    from celeriac import Request, Task
    from celeriac.beat import Beat
    from celeriac.execution import Outcome
    from celeriac.message import Message
    from celeriac.worker import Held, Worker


def note(path: str, what: str, task_id: str | None = "") -> None:
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{what} {task_id or '-'} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


class HookLog(Middleware):
    """Writes every hook it sees to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def before_publish(self, message: Message) -> None:
        note(self.path, "before_publish", message.id)

    def after_publish(self, message: Message) -> None:
        note(self.path, "after_publish", message.id)

    def worker_start(self, worker: Worker) -> None:
        note(self.path, "worker_start")

    def worker_stop(self, worker: Worker) -> None:
        note(self.path, "worker_stop")

    def after_fetch(self, worker: Worker, held: Held) -> None:
        note(self.path, "after_fetch", held.task_id)

    def after_skip(self, worker: Worker, held: Held) -> None:
        note(self.path, "after_skip", held.task_id)

    def after_settle(self, worker: Worker, held: Held) -> None:
        assert held.action is not None  # a settled message has its action
        note(self.path, f"after_settle:{held.action.value}", held.task_id)

    def child_start(self) -> None:
        note(self.path, "child_start")

    def before_execute(self, task: Task[Any, Any], request: Request) -> None:
        note(self.path, "before_execute", request.id)

    def on_retry(self, task: Task[Any, Any], request: Request, reason: BaseException) -> None:
        note(self.path, "on_retry", request.id)

    def on_failure(self, task: Task[Any, Any], request: Request, exc: BaseException) -> None:
        note(self.path, "on_failure", request.id)

    def after_execute(
        self, task: Task[Any, Any], request: Request, outcome: Outcome, value: Any
    ) -> None:
        note(self.path, f"after_execute:{outcome.state}", request.id)

    def beat_start(self, beat: Beat) -> None:
        note(self.path, "beat_start")


class Broken(Middleware):
    """Raises in every hook where tasks run: the message must go on as if it had not."""

    def before_execute(self, task: Task[Any, Any], request: Request) -> None:
        raise RuntimeError("broken before_execute")

    def after_execute(
        self, task: Task[Any, Any], request: Request, outcome: Outcome, value: Any
    ) -> None:
        raise RuntimeError("broken after_execute")

    def after_settle(self, worker: Worker, held: Held) -> None:
        raise RuntimeError("broken after_settle")
