"""Celery's "Next steps" layout with an empty proj_bare/__init__.py: found as -A proj_bare."""

from celeriac import Celery

app = Celery("proj_bare", include=["proj_bare.tasks"])
app.conf.broker_transport_options = {"lease_seconds": 30.0}
