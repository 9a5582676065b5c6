"""Worker node names (``name@host``), as Celery's ``celery.utils.nodenames``."""

from __future__ import annotations

import socket

NODENAME_SEP = "@"
NODENAME_DEFAULT = "celeriac"


def gethostname() -> str:
    """This machine's host name."""
    return socket.gethostname()


def nodename(name: str, hostname: str) -> str:
    """``name@hostname``."""
    return NODENAME_SEP.join((name, hostname))


def nodesplit(name: str) -> tuple[str | None, str]:
    """``(name, host)`` of ``name@host``; ``(None, host)`` for a bare host."""
    head, sep, tail = name.partition(NODENAME_SEP)
    return (head, tail) if sep else (None, head)


def default_nodename(hostname: str | None = None) -> str:
    """``celeriac@<host>``, the node name a worker takes when ``-n`` is not given."""
    return nodename(NODENAME_DEFAULT, hostname or gethostname())


def anon_nodename(hostname: str | None = None, prefix: str = "gen") -> str:
    """A node name unique to this process, ``gen<pid>@<host>``."""
    import os

    return nodename(f"{prefix}{os.getpid()}", hostname or gethostname())


__all__ = ["anon_nodename", "default_nodename", "gethostname", "nodename", "nodesplit"]
