"""Fixups: what celeriac does for a framework it finds (Django: ``django.setup()``, stale
database connections closed between tasks)."""
