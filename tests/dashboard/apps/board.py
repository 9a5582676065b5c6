"""Tasks that the dashboard tests run in real worker subprocesses (``celeriac -A board worker``).

The broker comes from $CELERIAC_BROKER_URL; a beat entry (never run by beat in these tests) gives
the schedules page something to pause, resume and run.
"""

import os
import time
from typing import Any

from celeriac import Celery, Reject

app = Celery("board")
app.conf.beat_schedule = {
    "tick-every-hour": {"task": "board.add", "schedule": 3600.0, "args": (1, 1)}
}


@app.task(name="board.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="board.fails")
def fails(x: str) -> None:
    raise KeyError(f"no such key {x}")


@app.task(name="board.sleep_for")
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="board.refused")
def refused(x: object) -> None:
    raise Reject(f"refused {x}", requeue=False)


@app.task(name="board.halfway", bind=True)
def halfway(self: Any, seconds: float) -> str:
    """Says it is half done, then waits: its progress is visible while it runs."""
    self.update_state(state="PROGRESS", meta={"done": 5, "of": 10})
    time.sleep(seconds)
    return "done"


@app.task(name="board.needs_marker")
def needs_marker(*parents: object, path: str) -> str:
    """Fails until the file ``path`` exists: a DAG node to retry once it is there."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist yet")
    return path
