"""Helpers under the paths Celery users import them from (``celeriac.utils.log``...)."""
