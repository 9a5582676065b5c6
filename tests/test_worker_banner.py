"""The worker's start-up banner, as a user sees it: app, broker and backend (passwords masked),
pool, queues and tasks; none with ``-q``; no colour off a terminal."""

from __future__ import annotations

from support.processes import WorkerProcess


def test_the_banner_names_the_worker_and_masks_passwords(sqlite_url: str) -> None:
    worker = WorkerProcess(sqlite_url, "-c", "2", "-Q", "celeriac,other", "-n", "w1@test")
    worker.command[3:3] = ["--result-backend", "redis://:s3cret@127.0.0.1:1/0"]
    with worker:
        pass
    output = worker.output
    assert output.startswith("-------------- w1@test (celeriac v")
    assert ".> app:         jobs\n" in output
    assert f".> broker:      {sqlite_url}\n" in output
    assert ".> results:     redis://:***@127.0.0.1:1/0\n" in output
    assert ".> concurrency: 2 (prefork pool)\n" in output
    assert ".> other            exchange=other(direct) key=other\n" in output
    assert "[tasks]\n  . jobs.add\n" in output
    assert "s3cret" not in output and "\x1b[" not in output


def test_quiet_prints_no_banner(sqlite_url: str) -> None:
    worker = WorkerProcess(sqlite_url, "-c", "1")
    worker.command[3:3] = ["-q"]
    with worker:
        pass
    assert "[tasks]" not in worker.output and "ready:" in worker.output
