"""Imported by app.autodiscover_tasks() when the worker starts, not when proj is imported."""

import os

from celeriac import shared_task

from .celery import LoggedTask


@shared_task
def add(x, y):
    return x + y


@shared_task()
def pid():
    return os.getpid()


@shared_task(bind=True, name="proj.whoami")
def whoami(self):
    return [self.name, self.request.id]


@shared_task(base=LoggedTask)
def logged(x):
    return x * 10
