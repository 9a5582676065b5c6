"""The ``celeriac`` command as a user runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from celeriac import Celeriac, states
from support.processes import WorkerProcess, run_cli


def test_call_then_result(sqlite_url: str) -> None:
    with WorkerProcess(sqlite_url, "-c", "1"):
        sent = run_cli(sqlite_url, "-A", "jobs", "call", "jobs.add", "--args", "[2, 2]")
        assert sent.returncode == 0, sent.stderr
        task_id = sent.stdout.strip()
        shown = run_cli(sqlite_url, "-A", "jobs", "result", task_id, "--timeout", "20")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "4"


def test_result_of_a_failed_task_exits_nonzero(sqlite_url: str, client: Celeriac) -> None:
    with WorkerProcess(sqlite_url, "-c", "1"):
        task_id = client.send_task("jobs.fails").id
        shown = run_cli(sqlite_url, "-A", "jobs", "result", task_id, "-t", "20", "--traceback")
    assert shown.returncode == 1
    assert shown.stdout.startswith("FAILURE: KeyError")
    assert "raise KeyError" in shown.stdout


def test_call_with_kwargs_countdown_and_queue(sqlite_url: str, client: Celeriac) -> None:
    sent = run_cli(
        sqlite_url,
        "-A",
        "jobs",
        "call",
        "jobs.add",
        "-k",
        '{"x": 1, "y": 2}',
        "--queue",
        "other",
        "--priority",
        "5",
        "--countdown",
        "0.5",
    )
    assert sent.returncode == 0, sent.stderr
    assert client.broker.queue_lengths(["other"]) == {"other": 1}
    with WorkerProcess(sqlite_url, "-c", "1", "-Q", "other"):
        assert client.AsyncResult(sent.stdout.strip()).get(timeout=20) == 3


def test_purge(sqlite_url: str, client: Celeriac) -> None:
    for i in range(3):
        client.send_task("jobs.add", (i, i))
    purged = run_cli(sqlite_url, "-A", "jobs", "purge", "-f")
    assert purged.returncode == 0, purged.stderr
    assert "Purged 3 messages" in purged.stdout
    assert client.broker.queue_lengths(["celeriac"]) == {"celeriac": 0}


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_other_pools_run_tasks(sqlite_url: str, client: Celeriac, pool: str) -> None:
    with WorkerProcess(sqlite_url, "-c", "2", "-P", pool):
        results = [client.send_task("jobs.add", (i, 1)) for i in range(10)]
        assert [r.get(timeout=20) for r in results] == [i + 1 for i in range(10)]
        assert client.send_task("jobs.flaky", (2,)).get(timeout=20) == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-A", "no_such_module", "worker"], "cannot import module 'no_such_module'"),
        (["-A", "broken_module", "worker"], "this module is broken on purpose"),
        (["-A", "bad_setting", "worker"], "unknown setting 'task_acks_lates'"),
        (["-A", "jobs", "-b", "bogus://user:hunter2@host/0", "worker"], "unknown broker URL"),
        (["-A", "jobs", "-b", "sqlite:///:memory:", "purge", "-f"], "in-memory SQLite"),
        (["worker"], "-A module"),
    ],
)
def test_bad_input_ends_with_one_clear_line(
    sqlite_url: str, args: list[str], expected: str
) -> None:
    ran = run_cli(sqlite_url, *args, timeout=30)
    assert ran.returncode != 0
    assert expected in ran.stderr
    assert "Traceback" not in ran.stderr
    assert "hunter2" not in ran.stderr
    assert len([line for line in ran.stderr.splitlines() if line.startswith("Error")]) == 1


def test_help_lists_the_worker_options(sqlite_url: str) -> None:
    shown = run_cli(sqlite_url, "worker", "--help")
    for flag in (
        "--concurrency",
        "--queues",
        "--loglevel",
        "--pool",
        "--hostname",
        "--max-tasks-per-child",
        "--max-memory-per-child",
    ):
        assert flag in shown.stdout


def test_unknown_task_is_dead_lettered_and_worker_keeps_going(
    sqlite_url: str, client: Celeriac
) -> None:
    with WorkerProcess(sqlite_url, "-c", "1"):
        unknown = client.send_task("jobs.no_such_task", (1,))
        assert client.send_task("jobs.add", (1, 1)).get(timeout=20) == 2
        with pytest.raises(Exception, match="not registered"):
            unknown.get(timeout=20)
    assert unknown.state == states.FAILURE
    (letter,) = client.broker.dead_letters()
    assert "jobs.no_such_task" in letter.reason


def test_celerys_global_options(tmp_path: Path, sqlite_url: str, client: Celeriac) -> None:
    """``--workdir`` and ``--config`` work; ``-q``, ``--no-color``, ``--skip-checks`` and
    ``--loader`` (with one line) are accepted, as a Celery unit file passes them."""
    (tmp_path / "wd_tasks.py").write_text("from celeriac import Celery\napp = Celery('wd')\n")
    (tmp_path / "wd_config.py").write_text("task_default_queue = 'elsewhere'\n")
    done = run_cli(
        sqlite_url,
        *("--workdir", str(tmp_path), "-A", "wd_tasks", "--config", "wd_config"),
        *("-q", "--no-color", "--skip-checks", "--loader", "default"),
        *("call", "wd.add", "--args", "[1, 2]"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "--loader default is not used: celeriac has no loaders\n"
    assert client.broker.queue_lengths(["elsewhere"]) == {"elsewhere": 1}


def test_a_workdir_that_does_not_exist_is_one_line(tmp_path: Path, sqlite_url: str) -> None:
    done = run_cli(sqlite_url, "--workdir", str(tmp_path / "nowhere"), "-A", "jobs", "purge", "-f")
    assert done.returncode != 0
    assert "nowhere" in done.stderr and "Traceback" not in done.stderr
