"""Celery's "Next steps" layout: the app in proj/celery.py, tasks found by autodiscovery.

Writes to $PROJ_MARKS (if set) one line per on_after_finalize, so a test sees the signal.
"""

import os

from celeriac import Celery

app = Celery("proj")
app.conf.broker_transport_options = {"lease_seconds": 30.0}
# proj.notasks has no tasks module: skipped, as in Celery.
app.autodiscover_tasks(["proj", "proj.notasks"])


class LoggedTask(app.Task):  # type: ignore[name-defined,misc]  # a property, as in Celery
    """A base class from app.Task: on_success records the result."""

    def on_success(self, retval, task_id, args, kwargs):
        marks = os.environ.get("PROJ_MARKS")
        if marks:
            with open(marks, "a") as f:
                f.write(f"success {self.name} {retval}\n")


@app.on_after_finalize.connect
def finalized(sender, **kwargs):
    marks = os.environ.get("PROJ_MARKS")
    if marks:
        with open(marks, "a") as f:
            f.write(f"finalized {sorted(n for n in sender.tasks if n.startswith('proj.'))}\n")
