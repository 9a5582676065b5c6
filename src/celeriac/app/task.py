"""Where Celery users import the task base class from: ``from celeriac.app.task import Task``."""

from celeriac.task import Task

__all__ = ["Task"]
