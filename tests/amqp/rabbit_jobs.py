"""Tasks that the RabbitMQ tests run in real worker subprocesses (``celeriac -A rabbit_jobs``).

The broker comes from $CELERIAC_BROKER_URL, the result backend from $CELERIAC_RESULT_BACKEND (a
throw-away Redis), the test's namespace from $CELERIAC_TEST_AMQP_NAMESPACE and the lease and the
consumer timeout from $CELERIAC_TEST_LEASE and $CELERIAC_TEST_CONSUMER_TIMEOUT. Counted tasks
append "<task id> <pid>" to a file (O_APPEND: exact across processes).
"""

import os
import time

from celeriac import Celery, Task

app = Celery("rabbit_jobs")
app.conf.broker_transport_options = {
    "namespace": os.environ.get("CELERIAC_TEST_AMQP_NAMESPACE", ""),
    "lease_seconds": float(os.environ.get("CELERIAC_TEST_LEASE", "30")),
    "consumer_timeout": float(os.environ.get("CELERIAC_TEST_CONSUMER_TIMEOUT", "1800")),
}


def _log_run(path: str, task_id: str | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{task_id} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True)
def counted(self: Task[..., str], path: str, seconds: float = 0.0) -> str:
    """Sleep ``seconds``, then record one run."""
    time.sleep(seconds)
    _log_run(path, self.request.id)
    return str(self.request.id)


@app.task(bind=True, max_retries=3)
def flaky(self: Task[..., int], n: int) -> int:
    """Fail (and retry after 0.3 s) until the n-th try."""
    if self.request.retries < n:
        raise self.retry(countdown=0.3)
    return n


@app.task
def total(numbers: list[int]) -> int:
    return sum(numbers)


BEAT_LOG = os.environ.get("CELERIAC_TEST_BEAT_LOG")
if BEAT_LOG:  # the beat test: one fire a second, each logged with its due time by who ran it
    app.conf.beat_max_loop_interval = 0.5
    app.conf.beat_schedule = {"tick": {"task": "rabbit_jobs.tick", "schedule": 1.0}}


@app.task(bind=True)
def tick(self: Task[..., None]) -> None:
    """Log which fire this is: "<due> <pid>"."""
    due = (self.request.headers or {}).get("beat_due")
    _log_run(BEAT_LOG or os.devnull, str(due))
