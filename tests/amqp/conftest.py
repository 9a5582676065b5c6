"""Fixtures for the RabbitMQ tests: the shared server (its vhost ``celeriac-test``, so that a test
may close every connection there), a namespace of the test's own that is deleted afterwards, a
throw-away Redis for results, and a client app and worker processes on them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celeriac
from support.processes import APPS, WorkerProcess
from support.rabbitmq import VHOST, delete_namespace, namespace, require_rabbitmq
from support.redis_server import RedisServer

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def amqp_vhost_url() -> str:
    """The URL of the test vhost (created, with guest's permissions, when missing)."""
    require_rabbitmq()
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", VHOST], capture_output=True, check=False)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"],
        capture_output=True,
        check=True,
    )
    return f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"


@pytest.fixture
def amqp_namespace(amqp_vhost_url: str) -> Iterator[str]:
    """A prefix for every name this test declares; all of them are deleted afterwards."""
    prefix = namespace()
    yield prefix
    delete_namespace(VHOST, prefix)


@pytest.fixture
def results_url(tmp_path: Path) -> Iterator[str]:
    """A throw-away Redis for the results."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    yield server.url()
    server.close()


@pytest.fixture
def rabbit_client(amqp_vhost_url: str, amqp_namespace: str, results_url: str) -> Iterator[Celeriac]:
    """An app in the test process on this test's namespace, with the Redis backend."""
    app = Celeriac("client", broker=amqp_vhost_url, backend=results_url)
    app.conf.broker_transport_options = {"namespace": amqp_namespace}
    yield app
    app.close()


@pytest.fixture
def rabbit_worker(
    amqp_vhost_url: str, amqp_namespace: str, results_url: str
) -> Callable[..., WorkerProcess]:
    """Builds (not starts) ``celeriac -A rabbit_jobs worker`` processes on this test's names."""

    def build(*args: str, **env: Any) -> WorkerProcess:
        return WorkerProcess(
            amqp_vhost_url,
            *args,
            app="rabbit_jobs",
            PYTHONPATH=f"{HERE}:{APPS}",
            CELERIAC_RESULT_BACKEND=results_url,
            CELERIAC_TEST_AMQP_NAMESPACE=amqp_namespace,
            **{k: str(v) for k, v in env.items()},
        )

    return build
