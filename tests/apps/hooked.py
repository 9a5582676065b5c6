"""An app whose middleware writes down every hook it sees (``hooklog.HookLog``), and receivers
of Celery's signals that write "signal:<name> <task id> <pid>" to the same file, named by
$CELERIAC_TEST_HOOK_LOG. ``hooklog.Broken`` raises in every hook where tasks run.
"""

import os

from hooklog import Broken, HookLog, note

from celeriac import Celery, Reject, signals

LOG = os.environ.get("CELERIAC_TEST_HOOK_LOG", "")
app = Celery("hooked", middleware=[HookLog(LOG), Broken()])


@signals.worker_process_init.connect
def on_process_init(sender=None, **kwargs):
    note(LOG, "signal:worker_process_init")


@signals.task_prerun.connect
def on_prerun(sender=None, task_id=None, task=None, args=None, kwargs=None, **rest):
    note(LOG, f"signal:task_prerun:{task.name}:{args}", task_id)


@signals.task_postrun.connect
def on_postrun(sender=None, task_id=None, retval=None, state=None, **rest):
    note(LOG, f"signal:task_postrun:{state}", task_id)


@app.task
def add(x, y):
    return x + y


@app.task(bind=True, max_retries=1, default_retry_delay=0)
def flaky(self):
    if self.request.retries == 0:
        raise self.retry(exc=ValueError("first try"))
    return "second try"


@app.task
def fail():
    raise KeyError("always")


@app.task
def refuse():
    raise Reject("not for me", requeue=False)
