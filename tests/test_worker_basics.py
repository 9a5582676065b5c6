"""The foundation's promise, end to end: a real worker subprocess on the SQLite broker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from celeriac import Celeriac, TaskError, states
from support.processes import WorkerProcess, count_runs, environment


def test_the_readme_program_works_unchanged(tmp_path: Path, sqlite_url: str) -> None:
    program = tmp_path / "tasks.py"
    program.write_text(
        textwrap.dedent(
            """
            import time
            from celeriac import Celery

            app = Celery('tasks')

            @app.task
            def test(x, y):
                time.sleep(1)
                return x + y

            @app.task(bind=True, default_retry_delay=1, max_retries=5)
            def flaky(self, n):
                try:
                    if self.request.retries < n:
                        raise ConnectionError("network down")
                    return self.request.retries
                except ConnectionError as e:
                    raise self.retry(exc=e)
            """
        )
    )
    env = environment(sqlite_url)
    env["PYTHONPATH"] = str(tmp_path)
    worker = WorkerProcess(sqlite_url, "-c", "2", app="tasks")
    worker.env = env
    with worker:
        client = subprocess.run(
            [
                sys.executable,
                "-c",
                "from tasks import test, flaky\n"
                "print(test.delay(2, 2).get(timeout=30))\n"
                "print(flaky.delay(3).get(timeout=30))",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert client.returncode == 0, client.stderr
    assert client.stdout.split() == ["4", "3"]
    assert worker.output.count("retry: ConnectionError: network down") == 3


def test_failures_come_back_with_type_and_remote_traceback(
    client: Celeriac, sqlite_url: str
) -> None:
    with WorkerProcess(sqlite_url, "-c", "1"):
        result = client.send_task("jobs.fails")
        with pytest.raises((KeyError, TaskError)) as raised:
            result.get(timeout=30)
    assert result.state == states.FAILURE
    assert "no such thing" in str(raised.value)
    assert "raise KeyError" in (result.traceback or "")


def test_children_are_recycled_after_max_tasks(client: Celeriac, sqlite_url: str) -> None:
    with WorkerProcess(sqlite_url, "-c", "1", "--max-tasks-per-child", "3"):
        pids = [client.send_task("jobs.whose_pid").get(timeout=20) for _ in range(9)]
    assert [len(set(pids[i : i + 3])) for i in (0, 3, 6)] == [1, 1, 1]
    assert len(set(pids)) == 3


def test_children_are_recycled_above_max_memory(client: Celeriac, sqlite_url: str) -> None:
    with WorkerProcess(sqlite_url, "-c", "1", "--max-memory-per-child", "100000"):
        first = client.send_task("jobs.hog_memory", (150,)).get(timeout=20)
        second = client.send_task("jobs.whose_pid").get(timeout=20)
        third = client.send_task("jobs.whose_pid").get(timeout=20)
    assert first != second
    assert second == third


def test_queues_and_node_name(client: Celeriac, sqlite_url: str) -> None:
    with WorkerProcess(sqlite_url, "-c", "1", "-Q", "a,b", "-n", "special@%h") as worker:
        on_a = client.send_task("jobs.add", (1, 1), queue="a")
        on_b = client.send_task("jobs.add", (2, 2), queue="b")
        elsewhere = client.send_task("jobs.add", (3, 3))
        assert (on_a.get(timeout=20), on_b.get(timeout=20)) == (2, 4)
        assert on_a.worker is not None and on_a.worker.startswith("special@")
        assert "queues a,b" in worker.output
    assert elsewhere.state == states.PENDING


def test_recycling_after_every_task_loses_nothing(
    client: Celeriac, sqlite_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    results = [client.send_task("jobs.counted", (str(runs),)) for _ in range(40)]
    with WorkerProcess(sqlite_url, "-c", "2", "--max-tasks-per-child", "1") as worker:
        pids = {r.get(timeout=60)["pid"] for r in results}
    assert len(pids) == 40  # a fresh child for every task
    assert "ended with exit code" not in worker.output  # no job was sent to a leaving child
    assert set(count_runs(runs).values()) == {1}
    assert client.broker.dead_letters() == []
