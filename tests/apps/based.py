"""An app whose tasks share a base class that overrides Celery's handlers, as Celery's docs
show (``class MyTask(Task): def on_failure(...)``); each handler appends
"<handler> <task id> <what it got>" to the file named by $CELERIAC_TEST_HANDLER_LOG."""

import os

from celeriac import Celery, Task

app = Celery("based")
LOG = os.environ.get("CELERIAC_TEST_HANDLER_LOG", os.devnull)


def note(line):
    with open(LOG, "a") as log:
        log.write(line + "\n")


class Logged(Task):
    def before_start(self, task_id, args, kwargs):
        note(f"before_start {task_id} {args}")

    def on_success(self, retval, task_id, args, kwargs):
        note(f"on_success {task_id} {retval}")

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        note(f"on_failure {task_id} {type(exc).__name__} {'Traceback' in einfo.traceback}")

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        note(f"on_retry {task_id} {type(exc).__name__}")

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        note(f"after_return {task_id} {status} {einfo is None}")


@app.task(base=Logged)
def add(x, y):
    return x + y


@app.task(base=Logged)
def fail():
    raise KeyError("no such key")


@app.task(base=Logged, bind=True, max_retries=1, default_retry_delay=0)
def flaky(self):
    if self.request.retries == 0:
        raise self.retry(exc=ValueError("first try"))
    return "ok"
