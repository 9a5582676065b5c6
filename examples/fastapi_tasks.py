"""The tasks of the FastAPI example (``fastapi_app.py``): ``celeriac -A fastapi_tasks worker``
runs them.

No broker is named, so celeriac uses $CELERIAC_BROKER_URL, else the SQLite file ./celeriac.db.
"""

import time

from celeriac import Celery

app = Celery("fastapi_tasks")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def square(n: int) -> int:
    time.sleep(0.1)  # some work
    return n * n


@app.task
def tsum(numbers: list[int]) -> int:
    return sum(numbers)


@app.task
def divide(x: float, y: float) -> float:
    return x / y
