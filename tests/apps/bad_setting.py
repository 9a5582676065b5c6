"""An app module with a misspelt setting: the CLI must say so in one line."""

from celeriac import Celery

app = Celery("bad_setting")
app.conf.task_acks_lates = True
