"""Middleware for the tests: ``HookLog`` writes down every hook it sees, ``Broken`` raises.

``HookLog`` appends "<hook> <task id> <pid>" to a file (O_APPEND writes this small are atomic,
so the log is exact across a worker's processes); the tests read the hooks of each task id in
order. Both are used in the test process and, through tests/apps/hooked.py, in real workers.
"""

import os

from celeriac.middleware import Middleware


def note(path, what, task_id=""):
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{what} {task_id or '-'} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


class HookLog(Middleware):
    """Writes every hook it sees to ``path``."""

    def __init__(self, path):
        self.path = path

    def before_publish(self, message):
        note(self.path, "before_publish", message.id)

    def after_publish(self, message):
        note(self.path, "after_publish", message.id)

    def worker_start(self, worker):
        note(self.path, "worker_start")

    def worker_stop(self, worker):
        note(self.path, "worker_stop")

    def after_fetch(self, worker, held):
        note(self.path, "after_fetch", held.task_id)

    def after_skip(self, worker, held):
        note(self.path, "after_skip", held.task_id)

    def after_settle(self, worker, held):
        note(self.path, f"after_settle:{held.action.value}", held.task_id)

    def child_start(self):
        note(self.path, "child_start")

    def before_execute(self, task, request):
        note(self.path, "before_execute", request.id)

    def on_retry(self, task, request, reason):
        note(self.path, "on_retry", request.id)

    def on_failure(self, task, request, exc):
        note(self.path, "on_failure", request.id)

    def after_execute(self, task, request, outcome, value):
        note(self.path, f"after_execute:{outcome.state}", request.id)

    def beat_start(self, beat):
        note(self.path, "beat_start")


class Broken(Middleware):
    """Raises in every hook where tasks run: the message must go on as if it had not."""

    def before_execute(self, task, request):
        raise RuntimeError("broken before_execute")

    def after_execute(self, task, request, outcome, value):
        raise RuntimeError("broken after_execute")

    def after_settle(self, worker, held):
        raise RuntimeError("broken after_settle")
