"""Optional parts under the paths Celery users import them from (``celeriac.contrib.testing``,
``celeriac.contrib.abortable``)."""
