"""Celery's pytest fixtures under Celery's names, run as a user's suite would run them: a small
test file and conftest written in tmp_path, run by pytest in a subprocess (the plugin comes from
celeriac's pytest11 entry point)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CONFTEST = """
import pytest

@pytest.fixture(scope="session")
def celery_config():
    return {"task_compression": "zlib", "result_compression": "gzip"}

@pytest.fixture(scope="session")
def celery_includes():
    return ["proj_tasks"]

@pytest.fixture(scope="session")
def celery_worker_parameters():
    return {"pool": "threads", "concurrency": 2, "shutdown_timeout": 5}
"""

TASKS = """
from celeriac.shared import shared_task

@shared_task
def mul(x, y):
    return x * y
"""

TESTS = """
import threading

from celeriac.contrib.testing.app import TestApp
from celeriac.contrib.testing.worker import start_worker


def test_a_real_worker_runs_what_delay_sends(celery_app, celery_worker):
    @celery_app.task
    def add(x, y):
        return x + y

    assert add.delay(4, 4).get(timeout=10) == 8
    assert celery_app.conf.task_compression == "zlib"
    assert celery_worker.options.pool == "threads"


def test_includes_are_imported(celery_app, celery_worker):
    import proj_tasks

    assert "proj_tasks.mul" in celery_app.tasks
    assert celery_app.send_task("proj_tasks.mul", (6, 7)).get(timeout=10) == 42


def test_the_worker_runs_in_another_thread(celery_app, celery_worker):
    @celery_app.task
    def where():
        return threading.current_thread().name

    assert where.delay().get(timeout=10) != threading.current_thread().name


def test_start_worker_as_a_context_manager():
    app = TestApp()

    @app.task
    def hello(name):
        return "hello " + name

    with start_worker(app, perform_ping_check=True) as worker:
        assert hello.delay("world").get(timeout=10) == "hello world"
        assert "celery.ping" in app.tasks
    assert worker._stopping


SESSION_WORKERS = set()


def test_a_session_worker(celery_session_app, celery_session_worker):
    SESSION_WORKERS.add(id(celery_session_worker))
    assert celery_session_app.send_task("proj_tasks.mul", (2, 3)).get(timeout=10) == 6


def test_the_same_session_worker(celery_session_app, celery_session_worker):
    SESSION_WORKERS.add(id(celery_session_worker))
    assert SESSION_WORKERS == {id(celery_session_worker)}
    assert celery_session_app.send_task("proj_tasks.mul", (3, 3)).get(timeout=10) == 9
"""


def test_celerys_fixtures_in_a_users_suite(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "proj_tasks.py").write_text(textwrap.dedent(TASKS))
    (tmp_path / "test_user.py").write_text(textwrap.dedent(TESTS))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "6 passed" in run.stdout
