"""Tasks for the task events and history tests (tests/test_events.py), run by real workers.

The broker comes from $CELERIAC_BROKER_URL. $CELERIAC_TEST_HISTORY=0 turns ``task_history``
off; $CELERIAC_TEST_HIDE_ARGS=1 sets ``dashboard_hide_args``.
"""

import os
import time

from celeriac import Celery

app = Celery("monitored", task_send_sent_event=True)
app.conf.task_history = os.environ.get("CELERIAC_TEST_HISTORY", "1") == "1"
app.conf.dashboard_hide_args = os.environ.get("CELERIAC_TEST_HIDE_ARGS") == "1"


@app.task(name="monitored.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="monitored.boom")
def boom(word: str) -> None:
    raise KeyError(word)


@app.task(name="monitored.flaky", bind=True, max_retries=2)
def flaky(self) -> str:
    if self.request.retries == 0:
        raise self.retry(countdown=0.1)
    return "third time lucky"


@app.task(name="monitored.progress", bind=True)
def progress(self, steps: int) -> int:
    for step in range(steps):
        self.update_state(state="PROGRESS", meta={"done": step + 1, "of": steps})
    return steps


@app.task(name="monitored.nap")
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
