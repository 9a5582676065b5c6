# Celery's "First steps with Django" idiom: the app is imported when the package is.
from .celery import app as celery_app

__all__ = ("celery_app",)
