"""The pytest plugin that celeriac installs: its fixtures, its documented example, use_memory."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import celeriac.testing
from celeriac import Celeriac
from celeriac.backends.memory import MemoryBackend
from celeriac.brokers.memory import MemoryBroker
from celeriac.worker import Worker


def documented_example() -> str:
    """The code block of the ``celeriac.testing`` docstring, as a user would copy it."""
    lines = (celeriac.testing.__doc__ or "").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("    def test_add("))
    block = []
    for line in lines[start:]:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


def test_the_plugin_is_registered(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("celeriac")


def test_the_documented_example_works_verbatim(
    celeriac_app: Celeriac, celeriac_worker: Worker
) -> None:
    source = documented_example()
    assert source.startswith("def test_add(celeriac_app, celeriac_worker):")
    assert "celeriac_worker.drain()" in source
    namespace: dict[str, Any] = {}
    exec(compile(source, "celeriac.testing docstring", "exec"), namespace)
    namespace["test_add"](celeriac_app, celeriac_worker)
    assert len(celeriac_app.tasks) == 1


def test_the_documented_example_fails_when_it_should(
    celeriac_app: Celeriac, celeriac_worker: Worker
) -> None:
    source = documented_example().replace("== 4", "== 5")
    namespace: dict[str, Any] = {}
    exec(compile(source, "changed example", "exec"), namespace)
    with pytest.raises(AssertionError):
        namespace["test_add"](celeriac_app, celeriac_worker)


def test_celeriac_app_fixture_is_in_memory(celeriac_app: Celeriac) -> None:
    assert isinstance(celeriac_app.broker, MemoryBroker)
    assert isinstance(celeriac_app.backend, MemoryBackend)
    assert celeriac_app.conf.broker_url.startswith("memory://")
    assert celeriac_app.conf.result_backend == celeriac_app.conf.broker_url


def test_celeriac_worker_fixture_serves_the_app(
    celeriac_app: Celeriac, celeriac_worker: Worker
) -> None:
    assert celeriac_worker.app is celeriac_app

    @celeriac_app.task
    def fail() -> None:
        raise RuntimeError("from the worker")

    result = fail.delay()
    assert celeriac_worker.drain() == 1
    with pytest.raises(RuntimeError, match="from the worker"):
        result.get(timeout=0)


def test_each_test_gets_a_fresh_app(celeriac_app: Celeriac) -> None:
    assert celeriac_app.tasks == {}
    assert celeriac_app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


def test_use_memory_restores_the_previous_broker_and_backend(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/restore.db"
    app = Celeriac("restore", broker=url)
    broker, backend = app.broker, app.backend
    with celeriac.testing.use_memory(app) as same:
        assert same is app
        assert isinstance(app.broker, MemoryBroker)
        assert isinstance(app.backend, MemoryBackend)
        assert app.conf.broker_url.startswith("memory://")

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        result = add.delay(1, 2)
        celeriac.testing.in_process_worker(app).drain()
        assert result.get(timeout=1) == 3
    assert app.broker is broker
    assert app.backend is backend
    assert app.conf.broker_url == url
    assert app.conf.result_backend is None
    assert broker.queue_lengths(["celeriac"]) == {"celeriac": 0}
    assert app.AsyncResult(result.id).state == "PENDING"
    app.close()


def test_use_memory_restores_after_an_error_and_before_first_use() -> None:
    app = Celeriac("lazy", broker="memory://lazy-broker", backend="memory://lazy-backend")
    with pytest.raises(ZeroDivisionError), celeriac.testing.use_memory(app):
        assert app.broker.url != "memory://lazy-broker"
        _ = 1 / 0
    assert app.conf.broker_url == "memory://lazy-broker"
    assert app.conf.result_backend == "memory://lazy-backend"
    assert app.broker.url == "memory://lazy-broker"
    assert app.backend.url == "memory://lazy-backend"


def test_use_memory_blocks_are_isolated() -> None:
    app = Celeriac("isolated")

    @app.task
    def one() -> int:
        return 1

    with celeriac.testing.use_memory(app):
        one.delay()
        assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 1}
    with celeriac.testing.use_memory(app):
        assert app.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


def test_the_url_use_memory_sets_names_the_same_broker(celeriac_app: Celeriac) -> None:
    client = Celeriac("client", broker=celeriac_app.conf.broker_url)
    assert client.broker is celeriac_app.broker
    assert client.backend is celeriac_app.backend

    @celeriac_app.task(name="shared.add")
    def add(x: int, y: int) -> int:
        return x + y

    result = client.send_task("shared.add", (2, 2))
    celeriac.testing.in_process_worker(celeriac_app).drain()
    assert result.get(timeout=0) == 4


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts fds through /proc")
def test_in_process_workers_do_not_leak_file_descriptors(celeriac_app: Celeriac) -> None:
    import gc

    before = len(list(Path("/proc/self/fd").iterdir()))
    for _ in range(10):
        celeriac.testing.in_process_worker(celeriac_app).drain()
    gc.collect()
    assert len(list(Path("/proc/self/fd").iterdir())) - before < 4
