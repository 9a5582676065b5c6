from celery import Celery

app = Celery("proj", include=["proj.tasks"])
app.conf.task_track_started = True
