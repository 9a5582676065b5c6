"""Tasks written from Celery's "Tasks" guide, for tests/test_task_runtime_worker.py: custom
states (the progress bar), the request's fields, ``current_task``, ``replace``, abortable
tasks, the task logger and ``get()`` inside a task.

Tasks that must wait for the test wait for a file (a "gate") to appear, never for time to pass.
"""

import logging
import os
import time

from celeriac import Celery, chain, group
from celeriac.contrib.abortable import AbortableTask
from celeriac.result import allow_join_result
from celeriac.task import current_task
from celeriac.utils.log import get_task_logger

app = Celery("runtime")
app.conf.result_expires = 3600

logger = get_task_logger(__name__)
LOG = os.environ.get("CELERIAC_TEST_TASK_LOG")
if LOG:  # Celery's task log format, in a handler of the user's own
    handler = logging.FileHandler(LOG)
    handler.setFormatter(
        logging.Formatter(
            "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"
        )
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.info("module loaded")


def wait_for_file(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


@app.task
def add(x, y):
    return x + y


@app.task
def mul(x, y):
    return x * y


@app.task
def collect(values, path):
    with open(path, "a") as out:
        out.write(f"{values}\n")
    return values


@app.task(bind=True)
def progress(self, total, gate):
    """Celery's progress-bar pattern: PROGRESS with the count done, step by step."""
    for done in range(total):
        self.update_state(state="PROGRESS", meta={"current": done, "total": total})
        wait_for_file(f"{gate}.{done}")
    return {"current": total, "total": total, "status": "done"}


@app.task(bind=True)
def settles_early(self):
    self.update_state(state="SUCCESS", meta="set by update_state")
    return "returned"


@app.task(bind=True)
def fields(self):
    r = self.request
    return {
        "id": r.id,
        "delivery_info": {
            k: r.delivery_info.get(k)
            for k in ("exchange", "routing_key", "priority", "redelivered", "queue")
        },
        "correlation_id": r.correlation_id,
        "reply_to": r.reply_to,
        "is_eager": r.is_eager,
        "utc": r.utc,
        "timelimit": list(r.timelimit),
        "callbacks": r.callbacks,
        "chain": r.chain,
        "argsrepr": r.argsrepr,
        "kwargsrepr": r.kwargsrepr,
        "ignore_result": r.ignore_result,
        "hostname": r.hostname,
        "retries": r.retries,
        "parent_id": r.parent_id,
        "root_id": r.root_id,
        "group": r.group,
        "stamps": r.stamps,
    }


@app.task(bind=True)
def dies_once(self, marker):
    """The first delivery kills its process; the second reports how it was delivered."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return self.request.delivery_info["redelivered"]


def helper_that_knows_its_task():
    return current_task.request.id if current_task else None


@app.task
def who_am_i():
    return {"id": helper_that_knows_its_task(), "name": current_task.name}


@app.task(bind=True)
def replaced_by_add(self, x):
    raise self.replace(add.s(x, 10))


@app.task(bind=True)
def replaced_by_chain(self, x):
    raise self.replace(chain(add.s(x, 1), mul.s(2)))


@app.task(bind=True)
def replaced_by_group(self, x):
    raise self.replace(group(add.s(x, 1), add.s(x, 2)))


@app.task(bind=True, base=AbortableTask)
def abortable_loop(self, gate):
    open(gate, "w").close()  # it runs: the test may abort it now
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if self.is_aborted():
            return "aborted"
        time.sleep(0.02)
    return "never aborted"


@app.task(bind=True)
def logs(self, text):
    logger.info(text)
    return self.request.id


@app.task
def joins():
    try:
        return add.delay(1, 1).get(timeout=30)
    except RuntimeError as exc:
        return f"refused: {exc}"


@app.task
def joins_allowed():
    with allow_join_result():
        return add.delay(2, 2).get(timeout=30)


@app.task
def joins_without_sync_check():
    return add.delay(3, 3).get(timeout=30, disable_sync_subtasks=False)
