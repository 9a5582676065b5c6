"""A project laid out as Celery's "Next steps" shows: the app in proj/celery.py, ``shared_task``,
``app.autodiscover_tasks()``, ``app.Task``, ``app.on_after_finalize`` and ``app.worker_main``.

The apps are tests/apps/proj (``proj/__init__.py`` imports the app, as Django projects do) and
tests/apps/proj_bare (an empty ``__init__.py``).
"""

from __future__ import annotations

import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import celeriac.shared
from celeriac import Celeriac, current_app
from celeriac.exceptions import ConfigurationError
from celeriac.shared import shared_task
from celeriac.task import Task
from support.processes import APPS, WorkerProcess, environment, run_cli
from support.waiting import wait_for

# -- -A proj, as Celery finds an app ------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "task", "expected"),
    [
        ("proj", "proj.tasks.add", 4),
        ("proj.celery", "proj.tasks.add", 4),
        ("proj.celery:app", "proj.tasks.add", 4),
        ("proj.celery.app", "proj.tasks.add", 4),
        ("proj_bare", "proj_bare.tasks.mul", 6),
        ("proj_bare.celery", "proj_bare.tasks.mul", 6),
    ],
)
def test_worker_finds_the_app_as_celery_does(
    sqlite_url: str, client: Celeriac, reference: str, task: str, expected: int
) -> None:
    with WorkerProcess(sqlite_url, "-c", "1", app=reference):
        assert client.send_task(task, (2, 3 if "mul" in task else 2)).get(timeout=20) == expected


def test_a_module_without_an_app_is_a_clear_error(sqlite_url: str) -> None:
    done = run_cli(sqlite_url, "-A", "proj.notasks", "worker")
    assert done.returncode == 1
    assert "module 'proj.notasks' has no celeriac app in it" in done.stderr
    assert "Traceback" not in done.stderr


def test_shared_tasks_found_by_autodiscovery_run_on_a_worker(
    sqlite_url: str, client: Celeriac, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    with WorkerProcess(sqlite_url, "-c", "2", app="proj", PROJ_MARKS=str(marks)) as worker:
        assert client.send_task("proj.tasks.add", (2, 2)).get(timeout=20) == 4
        sent = client.send_task("proj.whoami")
        assert sent.get(timeout=20) == ["proj.whoami", sent.id]
        assert client.send_task("proj.tasks.logged", (4,)).get(timeout=20) == 40
        assert client.send_task("proj.tasks.pid").get(timeout=20) != worker.pid
        assert wait_for(lambda: "success proj.tasks.logged 40" in marks.read_text(), 20)
    finalized = [line for line in marks.read_text().splitlines() if line.startswith("finalized")]
    assert finalized == [
        "finalized ['proj.tasks.add', 'proj.tasks.logged', 'proj.tasks.pid', 'proj.whoami']"
    ]


def test_worker_main_runs_the_worker_with_this_app(sqlite_url: str, client: Celeriac) -> None:
    code = "from proj.celery import app\napp.worker_main(argv=['worker', '-l', 'INFO', '-c', '1'])"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env=environment(sqlite_url),
        cwd=str(APPS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.send_task("proj.tasks.add", (20, 22)).get(timeout=30) == 42
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "ready:" in err


def test_app_start_runs_any_command_with_this_app(sqlite_url: str, client: Celeriac) -> None:
    """Celery's ``app.start()``: the command line, with no ``-A``."""
    sent = client.send_task("proj.tasks.add", (1, 2))
    code = f"from proj.celery import app\napp.start(['result', '{sent.id}'])"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=environment(sqlite_url),
        cwd=str(APPS),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "PENDING: null\n"), done.stderr


# -- shared_task, in this process -------------------------------------------------------------


@pytest.fixture
def fresh_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shared tasks of this test only: the registry is global, as in Celery."""
    monkeypatch.setattr(celeriac.shared, "_shared", [])
    monkeypatch.setattr(celeriac.shared, "_apps", weakref.WeakSet())


@pytest.mark.usefixtures("fresh_shared")
def test_shared_task_registers_with_existing_and_later_apps() -> None:
    before = Celeriac("before", broker="memory://")

    @shared_task
    def double(x: int) -> int:
        return x * 2

    after = Celeriac("after", broker="memory://")
    name = f"{__name__}.test_shared_task_registers_with_existing_and_later_apps.<locals>.double"
    assert double.name == name
    assert name in before.tasks
    assert name in after.tasks
    assert before.tasks[name] is not after.tasks[name]
    assert current_app() is after
    assert double.app is after  # the current app's task
    assert double(21) == 42
    assert double.s(1).task == name
    assert "shared_task" in repr(double)


@pytest.mark.usefixtures("fresh_shared")
def test_shared_task_options_and_the_current_app_sending() -> None:
    class Base(Task[Any, Any]):
        pass

    @shared_task(bind=True, base=Base, name="shared.whoami", max_retries=1)
    def whoami(self: Task[Any, Any]) -> str:
        return self.name

    app = Celeriac("eager", broker="memory://", task_always_eager=True)
    assert isinstance(app.tasks["shared.whoami"], Base)
    assert app.tasks["shared.whoami"].max_retries == 1
    assert whoami.delay().get() == "shared.whoami"
    assert whoami.apply_async().get() == "shared.whoami"


@pytest.mark.usefixtures("fresh_shared")
def test_shared_task_with_an_unknown_option_names_it() -> None:
    Celeriac("strict", broker="memory://")
    with pytest.raises(ConfigurationError, match="retrys"):
        shared_task(retrys=3)(lambda: None)


# -- autodiscover_tasks -----------------------------------------------------------------------


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path where a test writes packages; they are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


TASKS = "from celeriac import current_app\n@current_app().task\ndef ping():\n    return 'pong'\n"


def test_autodiscover_is_lazy_until_the_task_modules_are_imported(packages: Path) -> None:
    write(packages, {"shopa/__init__.py": "", "shopa/tasks.py": TASKS, "empty/__init__.py": ""})
    app = Celeriac("lazy", broker="memory://")
    app.autodiscover_tasks(["shopa", "empty"])
    assert "shopa.tasks" not in sys.modules
    app.import_task_modules()
    assert "shopa.tasks.ping" in app.tasks


def test_autodiscover_with_a_callable_runs_at_finalize(packages: Path) -> None:
    write(packages, {"shopb/__init__.py": "", "shopb/jobs.py": TASKS})
    app = Celeriac("lazy", broker="memory://")
    app.autodiscover_tasks(lambda: ["shopb"], related_name="jobs")
    app.finalize()
    assert "shopb.jobs.ping" in app.tasks


def test_autodiscover_force_imports_at_once(packages: Path) -> None:
    write(packages, {"shopc/__init__.py": "", "shopc/tasks.py": TASKS})
    app = Celeriac("forced", broker="memory://")
    app.autodiscover_tasks(["shopc"], force=True)
    assert "shopc.tasks.ping" in app.tasks


def test_an_import_error_inside_a_tasks_module_names_it(packages: Path) -> None:
    write(packages, {"shopd/__init__.py": "", "shopd/tasks.py": "import no_such_thing_here\n"})
    app = Celeriac("broken", broker="memory://")
    app.autodiscover_tasks(["shopd"])
    with pytest.raises(ConfigurationError, match=r"'shopd\.tasks'.*no_such_thing_here"):
        app.import_task_modules()


def test_a_missing_package_is_an_error(packages: Path) -> None:
    app = Celeriac("missing", broker="memory://")
    with pytest.raises(ConfigurationError, match="no_such_package"):
        app.autodiscover_tasks(["no_such_package"], force=True)


# -- app.Task, on_after_finalize, config_from_object ----------------------------------------------


def test_app_task_is_the_base_of_its_tasks_and_task_cls_names_one(packages: Path) -> None:
    bases = "from celeriac import Task\nclass Audited(Task):\n    pass\nclass NotTask:\n    pass\n"
    write(packages, {"bases.py": bases})
    app = Celeriac("based", broker="memory://", task_cls="bases.Audited")
    assert app.Task.__name__ == "Audited"

    class Mine(app.Task):  # type: ignore[name-defined,misc]
        pass

    @app.task
    def plain() -> None:
        pass

    @app.task(base=Mine)
    def mine() -> None:
        pass

    assert type(plain).__name__ == "Audited"
    assert isinstance(mine, Mine)
    with pytest.raises(ConfigurationError, match="not a celeriac Task"):
        _ = Celeriac("bad", broker="memory://", task_cls="bases:NotTask").Task


def test_on_after_finalize_is_sent_once_after_the_tasks_are_registered() -> None:
    app = Celeriac("signals", broker="memory://")
    seen: list[list[str]] = []

    @app.task
    def work() -> None:
        pass

    @app.on_after_finalize.connect
    def ready(sender: Celeriac, **kwargs: Any) -> None:
        seen.append(sorted(sender.tasks))

    app.finalize()
    app.finalize()
    assert len(seen) == 1
    assert work.name in seen[0]


def test_config_from_object_silent_and_celerys_argument_order() -> None:
    app = Celeriac("configured", broker="memory://")
    app.config_from_object("no_such_config_module", silent=True)
    with pytest.raises(ConfigurationError, match="no_such_config_module"):
        app.config_from_object("no_such_config_module")

    class Config:
        CELERY_TASK_DEFAULT_QUEUE = "named"

    app.config_from_object(Config, False, False, "CELERY")
    assert app.conf.task_default_queue == "named"
