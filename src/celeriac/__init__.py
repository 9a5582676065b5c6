"""celeriac: a distributed task queue with Celery's API.

from celeriac import Celery

app = Celery("tasks")            # the SQLite file ./celeriac.db, no server needed

@app.task
def add(x, y):
    return x + y

add.delay(2, 2).get(timeout=10)  # 4, once a worker runs: celeriac -A tasks worker
"""

from celeriac import states
from celeriac.app import Celeriac, Celery
from celeriac.canvas import (
    DagRun,
    Signature,
    chain,
    chord,
    chunks,
    dag,
    group,
    signature,
    xmap,
    xstarmap,
)
from celeriac.current import current_app
from celeriac.exceptions import (
    CeleriacError,
    ChordError,
    ConfigurationError,
    Ignore,
    ImproperlyConfigured,
    MaxRetriesExceededError,
    NotRegistered,
    PublishError,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    TaskError,
    TaskRevokedError,
    TimeLimitExceeded,
    TimeoutError,
    WorkerLostError,
)
from celeriac.queues import Exchange, Queue
from celeriac.request import Request
from celeriac.result import AsyncResult, EagerResult, GroupResult, ResultSet
from celeriac.schedules import clocked, crontab, schedule
from celeriac.shared import shared_task
from celeriac.task import Task, current_task

__version__ = "0.1.0"

__all__ = [
    "AsyncResult",
    "Celeriac",
    "CeleriacError",
    "Celery",
    "ChordError",
    "ConfigurationError",
    "DagRun",
    "EagerResult",
    "Exchange",
    "GroupResult",
    "Ignore",
    "ImproperlyConfigured",
    "MaxRetriesExceededError",
    "NotRegistered",
    "PublishError",
    "Queue",
    "Reject",
    "Request",
    "ResultSet",
    "Retry",
    "Signature",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskError",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLostError",
    "__version__",
    "chain",
    "chord",
    "chunks",
    "clocked",
    "crontab",
    "current_app",
    "current_task",
    "dag",
    "group",
    "schedule",
    "shared_task",
    "signature",
    "states",
    "xmap",
    "xstarmap",
]
