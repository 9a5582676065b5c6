import os
import time

from celery.contrib.abortable import AbortableAsyncResult
from celery.result import ResultSet
from proj.tasks import add, div, limited, long_task, replaced, who_am_i

print(div.delay(6, 3).get(timeout=30))
try:
    div.delay(1, 0).get(timeout=30)
except ZeroDivisionError:
    print("ZeroDivisionError")
time.sleep(0.5)
with open(os.environ["PROGRAM_OUT"]) as f:
    print(sorted(line.split()[0] for line in f))
print(add.delay(2, 3).get(timeout=30))
print(replaced.delay(1).get(timeout=30))
print(who_am_i.delay().get(timeout=30))
result = long_task.delay()
deadline = time.monotonic() + 30
while result.state != "STARTED" and time.monotonic() < deadline:
    time.sleep(0.05)
AbortableAsyncResult(result.id).abort()
print(result.get(timeout=30))
started = time.monotonic()
print(ResultSet([limited.delay(i) for i in range(10)]).get(timeout=60))
print(time.monotonic() - started >= 1.5)
