"""Testing helpers under Celery's paths (``celeriac.contrib.testing.worker.start_worker``)."""
