import os
import time

from proj.celery import app
from proj.tasks import add, fail

print(add.delay(2, 2).get(timeout=30))
try:
    fail.delay().get(timeout=30)
except KeyError:
    print("KeyError")
unknown = app.send_task("proj.tasks.nothing_here")
try:
    unknown.get(timeout=30)
except Exception:  # the worker does not know the task
    print("unknown task failed")
time.sleep(0.5)
with open(os.environ["PROGRAM_OUT"]) as f:
    lines = [line.strip() for line in f]
wanted = [
    "celeryd_init True",
    "worker_init",
    "after_setup_logger",
    "after_setup_task_logger",
    "worker_process_init",
    "worker_ready",
    "before_task_publish proj.tasks.add True",
    "after_task_publish proj.tasks.add",
    "task_prerun proj.tasks.add [2, 2]",
    "task_success proj.tasks.add 4",
    "task_postrun proj.tasks.add 4 SUCCESS",
    "task_failure proj.tasks.fail KeyError",
    "task_unknown proj.tasks.nothing_here",
]
for line in wanted:
    print(line, line in lines)
print("after_task_publish proj.tasks.fail" in lines)
with open(os.environ["PROGRAM_OUT"] + ".log") as f:
    print("Adding 2 + 2" in f.read())
