"""The Django example project (examples/django), run as Celery's "First steps with Django" runs it.

Each test copies the project to its own folder, runs ``manage.py check`` and ``migrate`` there,
and starts ``celeriac -A proj worker`` with ``DJANGO_SETTINGS_MODULE`` set; tasks read and write
the ORM, and the rows are read back with ``sqlite3``. Every test runs on a SQLite broker and on
a throw-away Redis server.

(No ``__init__.py`` here: a ``django`` package in tests/ would shadow Django itself.)
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celeriac
from support.processes import WorkerProcess
from support.waiting import wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django"
TIMEOUT = 30.0


@pytest.fixture
def broker_url(sqlite_or_redis_url: str) -> str:
    """The broker of each test: SQLite, then Redis (``tests/conftest.py``)."""
    return sqlite_or_redis_url


@pytest.fixture
def project(tmp_path: Path, broker_url: str) -> Path:
    """A migrated copy of the example project, so no file lands in the repository."""
    site = tmp_path / "site"
    shutil.copytree(
        EXAMPLE, site, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3", "*.db")
    )
    checked = manage(site, broker_url, "check")
    assert checked.returncode == 0, checked.stderr
    assert "System check identified no issues" in checked.stdout
    migrated = manage(site, broker_url, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    return site


@pytest.fixture
def client(broker_url: str) -> Iterator[Celeriac]:
    """An app in the test process on the project's broker (it sends by task name)."""
    app = Celeriac("client", broker=broker_url)
    yield app
    app.close()


def django_env(broker_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY", "DJANGO"))}
    env.update(DJANGO_SETTINGS_MODULE="proj.settings", CELERY_BROKER_URL=broker_url, **extra)
    return env


def manage(site: Path, broker_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python manage.py <args>`` in the copied project."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=site,
        env=django_env(broker_url, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def worker(site: Path, broker_url: str, *args: str, **env: str) -> WorkerProcess:
    """``celeriac -A proj worker`` in the copied project, as the guide starts it."""
    process = WorkerProcess(broker_url, *args, app="proj", **env)
    process.env = django_env(broker_url, **env)
    process.cwd = site
    return process


def orders(site: Path) -> list[tuple[int, str, int, str, str]]:
    """The ``shop_order`` rows, read without Django."""
    with sqlite3.connect(site / "db.sqlite3") as db:
        return db.execute(
            "SELECT id, product, quantity, status, processed_by FROM shop_order ORDER BY id"
        ).fetchall()


def status_of(site: Path, order_id: int) -> str | None:
    found = [row[3] for row in orders(site) if row[0] == order_id]
    return found[0] if found else None


def waiting(client: Celeriac) -> int:
    return client.broker.queue_lengths(["celeriac"])["celeriac"]


def test_worker_runs_shared_tasks_that_use_the_orm(
    project: Path, broker_url: str, client: Celeriac
) -> None:
    with worker(project, broker_url, "-c", "2") as running:
        order_id = client.send_task("shop.tasks.create_order", ("pear", 2)).get(timeout=TIMEOUT)
        assert orders(project) == [(order_id, "pear", 2, "new", "")]
        status = client.send_task("shop.tasks.process_order", (order_id,)).get(timeout=TIMEOUT)
        summary = client.send_task("shop.tasks.order_summary", (order_id,)).get(timeout=TIMEOUT)
        count = client.send_task("shop.tasks.count_orders").get(timeout=TIMEOUT)
    assert status == "processed"
    assert summary == {"product": "pear", "quantity": 2, "task": "shop.tasks.order_summary"}
    assert count == 1
    [(_, _, _, stored, processed_by)] = orders(project)
    assert stored == "processed"
    assert processed_by.startswith("pid ")
    assert processed_by != f"pid {running.pid}"  # a pool child did it, not the main process
    assert "AppRegistryNotReady" not in running.output


def test_on_commit_sends_only_after_the_commit(
    project: Path, broker_url: str, client: Celeriac
) -> None:
    code = (
        "from django.db import transaction\n"
        "from proj.celery import app\n"
        "from shop.models import Order\n"
        "from shop.tasks import process_order\n"
        "waiting = lambda: app.broker.queue_lengths(['celeriac'])['celeriac']\n"
        "with transaction.atomic():\n"
        "    order = Order.objects.create(product='plum', quantity=1)\n"
        "    transaction.on_commit(lambda: process_order.delay(order.pk))\n"
        "    print('inside', waiting())\n"
        "print('after', waiting(), order.pk)\n"
    )
    shell = manage(project, broker_url, "shell", "-c", code)
    assert shell.returncode == 0, shell.stderr
    # Django 5.2's shell may first say how many objects it imported: read our two lines.
    inside, after = [line for line in shell.stdout.splitlines() if line.startswith(("in", "af"))]
    assert inside == "inside 0"
    _, sent, order_id = after.split()
    assert sent == "1"
    assert status_of(project, int(order_id)) == "new"
    with worker(project, broker_url, "-c", "1"):
        assert wait_for(lambda: status_of(project, int(order_id)) == "processed", TIMEOUT)


def test_the_management_command_commits_or_rolls_back(
    project: Path, broker_url: str, client: Celeriac
) -> None:
    failed = manage(project, broker_url, "place_order", "kiwi", "5", "--fail")
    assert failed.returncode != 0
    assert "no task was sent" in failed.stderr
    assert orders(project) == []
    assert waiting(client) == 0  # rolled back: on_commit never ran

    placed = manage(project, broker_url, "place_order", "apple", "3")
    assert placed.returncode == 0, placed.stderr
    assert waiting(client) == 1
    [(order_id, product, quantity, status, _)] = orders(project)
    assert (product, quantity, status) == ("apple", 3, "new")
    with worker(project, broker_url, "-c", "1"):
        assert wait_for(lambda: status_of(project, order_id) == "processed", TIMEOUT)


PROBE = """

from django.db.backends.signals import connection_created

_opened = []
connection_created.connect(lambda sender, connection, **kw: _opened.append(1), weak=False)


@shared_task
def connections_opened():
    Order.objects.count()
    return len(_opened)
"""


@pytest.mark.parametrize(("max_age", "expected"), [("0", [1, 2, 3]), ("600", [1, 1, 1])])
def test_connections_are_closed_between_tasks_as_conn_max_age_says(
    project: Path, broker_url: str, client: Celeriac, max_age: str, expected: list[int]
) -> None:
    # Outside a web request Django never closes a connection by itself: the worker does it
    # around each task (Django's close_old_connections), so CONN_MAX_AGE=0 means a fresh one.
    with (project / "shop" / "tasks.py").open("a") as tasks:
        tasks.write(PROBE)
    with worker(project, broker_url, "-P", "solo", DJANGO_CONN_MAX_AGE=max_age):
        opened = [
            client.send_task("shop.tasks.connections_opened").get(timeout=TIMEOUT) for _ in range(3)
        ]
    assert opened == expected
