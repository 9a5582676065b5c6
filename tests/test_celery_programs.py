r"""Celery projects, renamed and run: the migration guide's promise, kept.

Each folder of ``tests/celery_programs`` is a small project written as Celery's documentation
writes it. The test does what the guide tells a user to do, and nothing more: copy it, run
``sed -E 's/\bcelery\b/celeriac/g'`` over file names and contents (the word, so that
``celery_app``, ``celeryd_init`` and ``celeryconfig`` keep their names), take ``Queue`` and
``Exchange`` from celeriac instead of kombu, start the worker with the command in ``WORKER``
and run ``client.py``. Its output must be ``expected.txt``: what the program prints on Celery 5.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.processes import CELERIAC
from support.redis_server import RedisServer

PROGRAMS = Path(__file__).resolve().parent / "celery_programs"
NAMES = sorted(p.name for p in PROGRAMS.iterdir() if (p / "client.py").exists())
ON_REDIS = ("next_steps", "calling")  # the rest run on SQLite only: the broker is not their point


def renamed(text: str) -> str:
    """What the guide's two substitutions make of ``text``."""
    text = re.sub(r"\bcelery\b", "celeriac", text)
    return text.replace("from kombu import", "from celeriac import")


def copy_renamed(source: Path, target: Path) -> None:
    """Copy the program at ``source`` to ``target``, renamed as the guide says."""
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or path.name == "expected.txt":
            continue
        destination = target / renamed(str(path.relative_to(source)))
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_text(renamed(path.read_text()))


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One throw-away Redis for the programs that run on it."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url()


def broker_for(name: str, broker: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if broker == "sqlite":
        return f"sqlite:///{tmp_path / 'broker.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url.rsplit("/", 1)[0] + f"/{1 + NAMES.index(name)}"  # a database per program


def start_worker(project: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The worker that the program's ``WORKER`` file starts, its output in ``log``."""
    command = shlex.split((project / "WORKER").read_text())
    assert command[0] == "celeriac", command
    with log.open("w") as output:
        return subprocess.Popen(
            [CELERIAC, *command[1:]], cwd=project, env=env, stdout=output, stderr=output
        )


def stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(10)


@pytest.mark.parametrize(
    ("name", "broker"),
    [(n, "sqlite") for n in NAMES] + [(n, "redis") for n in NAMES if n in ON_REDIS],
)
def test_a_celery_program_runs_renamed(
    name: str, broker: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    project = tmp_path / "project"
    copy_renamed(PROGRAMS / name, project)
    env = dict(os.environ)
    env.pop("CELERIAC_BROKER_URL", None)
    env.update(
        CELERY_BROKER_URL=broker_for(name, broker, tmp_path, request),  # as a Docker setup has it
        PROGRAM_OUT=str(tmp_path / "out.txt"),
        PYTHONPATH=str(project),
    )
    log = tmp_path / "worker.log"
    worker = start_worker(project, env, log) if (project / "WORKER").exists() else None
    try:
        client = subprocess.run(
            [sys.executable, "client.py"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
    finally:
        if worker is not None:
            stop(worker)
    expected = (PROGRAMS / name / "expected.txt").read_text()
    worker_log = log.read_text()[-4000:] if log.exists() else "(no worker)"
    details = f"client stderr:\n{client.stderr[-3000:]}\nworker log:\n{worker_log}"
    assert client.stdout == expected, details
    assert client.returncode == 0, details


def test_the_rename_leaves_no_celery_module_behind(tmp_path: Path) -> None:
    """What the harness runs imports nothing from ``celery`` or kombu, and starts ``celeriac``."""
    copy_renamed(PROGRAMS / "next_steps", tmp_path)
    assert (tmp_path / "proj" / "celeriac.py").exists()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"\bcelery\b|kombu", text), path
