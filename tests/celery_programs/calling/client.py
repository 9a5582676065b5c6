import os
import time
from datetime import UTC, datetime, timedelta

from celery.utils import uuid
from proj.tasks import add, echo, error_handler

res = add.apply_async((2, 2), link=add.s(16))
print(res.get(timeout=30))
print(add.apply_async((2, 2), countdown=1, expires=60).get(timeout=30))
when = datetime.now(UTC) + timedelta(seconds=1)
print(add.apply_async((2, 2), eta=when).get(timeout=30))
print(
    add.apply_async(
        (2, 2),
        retry=True,
        retry_policy={
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
    ).get(timeout=30)
)
big = "celery " * 20000
for compression in ("zlib", "gzip", "bzip2", "lzma"):
    print(compression, echo.apply_async((big,), compression=compression).get(timeout=30) == big)
task_id = uuid()
print(add.apply_async((1, 1), task_id=task_id).id == task_id)
failed = add.apply_async((2, "2"), link_error=error_handler.s())
try:
    failed.get(timeout=30)
except TypeError:
    print("TypeError")
deadline = time.monotonic() + 30
while not os.path.exists(os.environ["PROGRAM_OUT"]) and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.2)
with open(os.environ["PROGRAM_OUT"]) as f:
    print(f.read().startswith(f"Task {failed.id} raised exception: TypeError("))
print(add.apply_async((2, 2), serializer="json", priority=9, queue="celery").get(timeout=30))
