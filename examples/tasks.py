"""The example tasks of the README: `celeriac -A tasks worker` runs them.

No broker is named, so celeriac uses the SQLite file ./celeriac.db: nothing to install or start.
"""

import time

from celeriac import Celery

app = Celery("tasks")


@app.task
def add(x, y):
    return x + y


@app.task
def test(x, y):
    time.sleep(1)
    return x + y


@app.task(bind=True, default_retry_delay=1, max_retries=5)
def flaky(self, n):
    """Fails with a network error n times, then succeeds; each retry waits in the broker."""
    try:
        if self.request.retries < n:
            raise ConnectionError("network down")
        return self.request.retries
    except ConnectionError as e:
        raise self.retry(exc=e)


@app.task
def divide(x, y):
    return x / y


@app.task
def mul(x, y):
    return x * y


@app.task
def tsum(numbers):
    return sum(numbers)
