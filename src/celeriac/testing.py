"""Testing tasks without a server and without sleeping: a pytest plugin and its helpers.

Installed with celeriac, the plugin gives two fixtures:

``celeriac_app``
    A fresh app on an in-memory broker and backend. Override it in your ``conftest.py`` to
    return your own app moved onto memory with :func:`use_memory`.
``celeriac_worker``
    A worker for that app that runs in the test's own thread: ``celeriac_worker.drain()`` runs
    every message that is ready, then returns, so a test never waits on a clock.

    def test_add(celeriac_app, celeriac_worker):
        @celeriac_app.task
        def add(x, y):
            return x + y

        result = add.delay(2, 2)
        celeriac_worker.drain()
        assert result.get(timeout=0) == 4
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from celeriac.app import Celeriac
    from celeriac.worker import Worker


@contextlib.contextmanager
def use_memory(app: Celeriac) -> Iterator[Celeriac]:
    """Point ``app`` at a fresh in-memory broker and backend for the duration of the block.

    Both are the ones their ``memory://`` URL names, so another app built from
    ``app.conf.broker_url`` (a client, say) shares them.
    """
    from celeriac.backends.memory import named_backend
    from celeriac.brokers.memory import named_broker

    saved = app._broker, app._backend, app.conf.broker_url, app.conf.result_backend
    name = f"test-{uuid.uuid4().hex}"
    app._broker, app._backend = named_broker(name), named_backend(name)
    app.conf.broker_url = app.conf.result_backend = f"memory://{name}"
    try:
        yield app
    finally:
        app._broker, app._backend, app.conf.broker_url, app.conf.result_backend = saved


def in_process_worker(app: Celeriac, *, queues: tuple[str, ...] = (), pool: str = "solo") -> Worker:
    """A worker whose ``drain()`` runs ready messages in the calling thread."""
    from celeriac.worker import Worker, WorkerOptions

    options = WorkerOptions(
        concurrency=1,
        queues=queues,
        pool=pool,
        hostname="celeriac@test",
        install_signal_handlers=False,
    )
    return Worker(app, options)


@pytest.fixture
def celeriac_app() -> Iterator[Celeriac]:
    """A fresh app on an in-memory broker and result backend."""
    from celeriac.app import Celeriac

    app = Celeriac("test")
    with use_memory(app):
        yield app


@pytest.fixture
def celeriac_worker(celeriac_app: Celeriac) -> Iterator[Worker]:
    """A worker for ``celeriac_app``; call ``drain()`` to run what is queued."""
    worker = in_process_worker(celeriac_app)
    yield worker
    worker.close()
