"""Tasks that the integration tests run in real worker subprocesses.

The broker comes from $CELERIAC_BROKER_URL and the lease from $CELERIAC_TEST_LEASE, so one module
serves every test. Tasks that must be counted append "<task id> <pid>" to a file: O_APPEND writes
this small are atomic, so the count is exact across processes.
"""

import os
import signal
import time

from celeriac import Celery, SoftTimeLimitExceeded

app = Celery("jobs")
app.conf.broker_transport_options = {
    "lease_seconds": float(os.environ.get("CELERIAC_TEST_LEASE", "30"))
}
if os.environ.get("CELERIAC_TEST_KEYPREFIX"):  # Redis: the keys of one test, apart from others
    app.conf.broker_transport_options["global_keyprefix"] = os.environ["CELERIAC_TEST_KEYPREFIX"]
if os.environ.get("CELERIAC_TEST_SHUTDOWN_TIMEOUT"):
    app.conf.worker_shutdown_timeout = float(os.environ["CELERIAC_TEST_SHUTDOWN_TIMEOUT"])


def _log_run(path: str, task_id: str | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{task_id} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


@app.task
def add(x, y):
    return x + y


@app.task
def noop():
    return None


@app.task(bind=True)
def counted(self, path, seconds=0.0):
    """Log this run, sleep, and report which worker process ran it."""
    _log_run(path, self.request.id)
    time.sleep(seconds)
    return {"pid": os.getpid(), "hostname": self.request.hostname}


@app.task(bind=True)
def counted_once_slow(self, path, seconds, marker):
    """Slow only on its first run (when ``marker`` does not exist yet)."""
    _log_run(path, self.request.id)
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(seconds)
    return {"pid": os.getpid(), "hostname": self.request.hostname}


@app.task
def sleep_for(seconds):
    time.sleep(seconds)
    return seconds


@app.task
def kill_own_process():
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(soft_time_limit=1)
def soft_limited():
    try:
        time.sleep(10)
    except SoftTimeLimitExceeded:
        return "caught soft limit"
    return "not interrupted"


@app.task(time_limit=1)
def hard_limited():
    time.sleep(30)


@app.task(bind=True, default_retry_delay=0.2, max_retries=5)
def flaky(self, n):
    try:
        if self.request.retries < n:
            raise ConnectionError("network down")
        return self.request.retries
    except ConnectionError as e:
        raise self.retry(exc=e)


@app.task
def fails():
    raise KeyError("no such thing")


@app.task
def whose_pid():
    return os.getpid()


@app.task
def identity():
    """The user, group and file mode mask the task runs with."""
    mask = os.umask(0)
    os.umask(mask)
    return [os.getuid(), os.getgid(), mask]


@app.task
def hog_memory(mebibytes):
    """Grow this process by ``mebibytes`` and keep it (a leaky task)."""
    _hoard.append(bytearray(mebibytes * 1024 * 1024))
    return os.getpid()


_hoard: list[bytearray] = []


@app.task(acks_late=False)
def kill_own_process_acked_early():
    """Acknowledged before it runs (Celery's default), then its process dies."""
    os.kill(os.getpid(), signal.SIGKILL)
