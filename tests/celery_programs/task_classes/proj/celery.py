import os

from celery import Celery

OUT = os.environ["PROGRAM_OUT"]


def note(line):
    with open(OUT, "a") as f:
        f.write(line + "\n")


app = Celery("proj")
app.conf.task_track_started = True
app.autodiscover_tasks(["proj"])
