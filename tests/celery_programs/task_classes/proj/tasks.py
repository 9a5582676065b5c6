import time

from celery import Task, current_task, shared_task
from celery.contrib.abortable import AbortableTask
from celery.utils.log import get_task_logger

from .celery import app, note

logger = get_task_logger(__name__)


class NotingTask(Task):
    def before_start(self, task_id, args, kwargs):
        note(f"before_start {self.name} {args}")

    def on_success(self, retval, task_id, args, kwargs):
        note(f"on_success {self.name} {retval}")

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        note(f"on_failure {self.name} {type(exc).__name__}")

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        note(f"after_return {self.name} {status}")


@app.task(base=NotingTask)
def div(x, y):
    logger.info("Dividing %s by %s", x, y)
    return x / y


@shared_task
def add(x, y):
    return x + y


@shared_task(bind=True)
def replaced(self, x):
    raise self.replace(add.s(x, 100))


@app.task
def who_am_i():
    return current_task.name, current_task.request.id is not None


@app.task(bind=True, base=AbortableTask)
def long_task(self):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if self.is_aborted():
            return "aborted"
        time.sleep(0.05)
    return "not aborted"


@app.task(rate_limit="5/s")
def limited(i):
    return i
