import os

from celery import Celery

app = Celery("proj", include=["proj.tasks"])
app.conf.task_compression = "gzip"
app.conf.result_compression = "zlib"
app.conf.task_publish_retry_policy = {
    "max_retries": 3,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
OUT = os.environ["PROGRAM_OUT"]
