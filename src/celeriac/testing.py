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

And Celery's fixtures, under Celery's names, for a suite that moves from Celery unchanged:

``celery_config`` (dict), ``celery_parameters`` (dict), ``celery_includes`` (list),
``celery_worker_parameters`` (dict)
    Override them in a ``conftest.py``: the settings, the app constructor's arguments, the task
    modules to import, and ``start_worker``'s arguments.
``celery_app``
    An app built from those (``celeriac.contrib.testing.app.TestApp``): in memory, unless
    ``celery_config`` names a broker.
``celery_worker``
    A real worker for ``celery_app`` running in a thread (``start_worker``): a task sent with
    ``delay()`` runs, and ``.get(timeout=10)`` waits for it.
``celery_session_app``, ``celery_session_worker``
    The same, one for the whole session (so, as in Celery, the four fixtures above that they
    use are session-scoped, and overrides of them must be too).
"""

from __future__ import annotations

import contextlib
import importlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

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


# -- Celery's fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def celery_config() -> Mapping[str, Any]:
    """The settings of ``celery_app``; override it to give your own."""
    return {}


@pytest.fixture(scope="session")
def celery_parameters() -> Mapping[str, Any]:
    """The arguments of ``celery_app``'s constructor; override it to give your own."""
    return {}


@pytest.fixture(scope="session")
def celery_includes() -> Sequence[str]:
    """Task modules that ``celery_app`` imports before ``celery_worker`` starts."""
    return ()


@pytest.fixture(scope="session")
def celery_worker_parameters() -> Mapping[str, Any]:
    """The arguments of ``start_worker`` for ``celery_worker`` (``pool``, ``concurrency``,
    ``perform_ping_check``, ``shutdown_timeout``...)."""
    return {}


@contextlib.contextmanager
def _test_app(
    config: Mapping[str, Any], parameters: Mapping[str, Any], includes: Sequence[str]
) -> Iterator[Celeriac]:
    from celeriac.contrib.testing.app import TestApp

    app = TestApp(config=config, set_as_current=True, **parameters)
    try:
        for module in includes:
            importlib.import_module(module)
        yield app
    finally:
        app.close()


@pytest.fixture
def celery_app(
    celery_config: Mapping[str, Any],
    celery_parameters: Mapping[str, Any],
    celery_includes: Sequence[str],
) -> Iterator[Celeriac]:
    """An app built from ``celery_config`` and ``celery_parameters``, made the current app;
    see the module docstring."""
    with _test_app(celery_config, celery_parameters, celery_includes) as app:
        yield app


@pytest.fixture(scope="session")
def celery_session_app(
    celery_config: Mapping[str, Any],
    celery_parameters: Mapping[str, Any],
    celery_includes: Sequence[str],
) -> Iterator[Celeriac]:
    """``celery_app``, one for the whole test session."""
    with _test_app(celery_config, celery_parameters, celery_includes) as app:
        yield app


@pytest.fixture(scope="session")
def celery_session_worker(
    celery_session_app: Celeriac, celery_worker_parameters: Mapping[str, Any]
) -> Iterator[Worker]:
    """A real worker for ``celery_session_app`` in a thread, for the whole test session."""
    from celeriac.contrib.testing.worker import start_worker

    with start_worker(celery_session_app, **celery_worker_parameters) as worker:
        yield worker


@pytest.fixture
def celery_worker(
    celery_app: Celeriac, celery_worker_parameters: Mapping[str, Any]
) -> Iterator[Worker]:
    """A real worker for ``celery_app`` in a thread while the test runs; see
    ``celeriac.contrib.testing.worker.start_worker``."""
    from celeriac.contrib.testing.worker import start_worker

    with start_worker(celery_app, **celery_worker_parameters) as worker:
        yield worker
