import time

from celery.result import AsyncResult
from proj.tasks import upload_files

print(upload_files(["a", "b"]))  # called directly: no state is stored
result = upload_files.delay(["a", "b", "c", "d", "e"])
seen = set()
deadline = time.monotonic() + 60
while not result.ready() and time.monotonic() < deadline:
    if result.state == "PROGRESS":
        seen.add((result.info["current"], result.info["total"]))
    time.sleep(0.02)
print(result.get(timeout=30), result.state)
print(len(seen) >= 2, all(total == 5 for _, total in seen))
print(AsyncResult(result.id).info)
