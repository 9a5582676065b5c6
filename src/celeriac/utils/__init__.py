"""Helpers under the paths Celery users import them from (``celeriac.utils.log``,
``celeriac.utils.uuid``, ``celeriac.utils.nodenames``...)."""

from __future__ import annotations

import uuid as _uuid

from celeriac.utils import nodenames


def uuid() -> str:
    """A new random id as a string (a UUID4), as Celery's ``celery.utils.uuid``; give it as
    ``task_id`` to know a call's id before it is sent."""
    return str(_uuid.uuid4())


__all__ = ["nodenames", "uuid"]
