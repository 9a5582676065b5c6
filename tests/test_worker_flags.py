"""Celery's deployment flags and worker signals, through the real ``celeriac worker`` command.

Every flag of ``celery worker`` a deployment passes is accepted: it does what it says, or one
line in the log says why nothing needs doing. The worker signals reach receivers that a
project's app module connects, with Celery's arguments.
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from celeriac import Celeriac, states
from celeriac.cli import worker_flags as flags
from celeriac.cli.beat import SCHEDULE_FILE
from celeriac.cli.beat import SCHEDULER as BEAT_SCHEDULER
from support.processes import CELERIAC, WorkerProcess

NOOPS = [
    ("--without-gossip", flags.GOSSIP),
    ("--without-mingle", flags.MINGLE),
    ("--without-heartbeat", flags.HEARTBEAT.format(flag="--without-heartbeat")),
    ("--heartbeat-interval=10", flags.HEARTBEAT.format(flag="--heartbeat-interval")),
    ("-Ofair", flags.FAIR.format(value="fair")),
    ("-E", flags.EVENTS),
    ("--statedb=/var/run/celery/%n.state", flags.STATEDB),
    ("-scelerybeat-schedule", flags.SCHEDULE),
    (
        "--scheduler=django_celery_beat.schedulers:DatabaseScheduler",
        flags.SCHEDULER.format(value="django_celery_beat.schedulers:DatabaseScheduler"),
    ),
]


def test_every_noop_flag_is_accepted_and_says_why_once(client: Celeriac, sqlite_url: str) -> None:
    args = [arg for arg, _ in NOOPS]
    with WorkerProcess(sqlite_url, "-c", "1", *args, app="throttled") as worker:
        assert client.send_task("throttled.free", (1,)).get(timeout=30)
    for _, line in NOOPS:
        assert worker.output.count(line) == 1, line


def test_time_limit_flags_set_the_workers_default_limits(client: Celeriac, sqlite_url: str) -> None:
    args = ("-c", "2", "--soft-time-limit", "1", "--time-limit", "3")
    with WorkerProcess(sqlite_url, *args, app="throttled") as worker:
        assert client.send_task("throttled.soft_catcher").get(timeout=30) == "caught soft limit"
        hard = client.send_task("throttled.stubborn")
        with pytest.raises(Exception, match="time limit"):
            hard.get(timeout=30)
        assert hard.state == states.FAILURE
        worker.wait_for("TimeLimitExceeded", 10)  # logged as the outcome is recorded


def test_purge_exclude_queues_and_include(client: Celeriac, sqlite_url: str) -> None:
    stale = client.send_task("throttled.free", (1,))
    elsewhere = client.send_task("throttled.free", (2,), queue="elsewhere")
    with WorkerProcess(
        sqlite_url,
        "--purge",
        "-Q",
        "celeriac,elsewhere",
        "-X",
        "elsewhere",
        "-I",
        "hooklog",
        "-c",
        "1",
        app="throttled",
    ) as worker:
        worker.wait_for("discarded 1 messages from celeriac (--purge)", 10)
        fresh = client.send_task("throttled.free", (3,))
        assert fresh.get(timeout=30)
    assert stale.state == states.PENDING  # purged: it never ran
    assert elsewhere.state == states.PENDING  # -X: its queue was not consumed
    assert "queues celeriac," in worker.output


def test_a_bad_autoscale_is_refused_with_one_line(sqlite_url: str) -> None:
    worker = WorkerProcess(sqlite_url, "--autoscale", "2,5", app="throttled")
    with pytest.raises(AssertionError, match="MAX must be at least 1 and at least MIN"):
        worker.start(10)


def test_worker_signals_reach_the_apps_receivers(sqlite_url: str, tmp_path: Path) -> None:
    log = tmp_path / "signals.log"
    worker = WorkerProcess(
        sqlite_url, "-c", "2", "-n", "w1@%h", app="throttled", CELERIAC_TEST_SIGNAL_LOG=str(log)
    )
    with worker:
        children = set(worker.children())
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    lines = [line.split() for line in log.read_text().splitlines()]
    names = [line[0] for line in lines]
    main = str(worker.pid)
    assert lines[0] == ["celeryd_init", f"w1@{socket.gethostname()}", "Worker", "True", main]
    assert lines[1] == ["worker_init", "Worker", main]
    assert names.index("worker_init") < names.index("worker_process_init")
    assert names.count("worker_process_init") == 2
    shutdowns = [line for line in lines if line[0] == "worker_process_shutdown"]
    # pid and exitcode, sent in each child as it exits (the receiver's own pid is the child's)
    assert {(line[1], line[2]) for line in shutdowns} == {(str(p), "0") for p in children}
    assert all(line[1] == line[3] for line in shutdowns)


def test_beat_accepts_a_schedule_file_and_a_scheduler_with_one_line_each(
    sqlite_url: str, tmp_path: Path
) -> None:
    beat = WorkerProcess(sqlite_url, app="timed")
    scheduler = "django_celery_beat.schedulers:DatabaseScheduler"
    schedule = str(tmp_path / "celerybeat-schedule")
    beat.command = [CELERIAC, "-A", "timed", "beat", "-l", "info", "-s", schedule, "-S", scheduler]
    with beat:
        pass
    assert beat.output.count(SCHEDULE_FILE.format(value=schedule)) == 1
    assert beat.output.count(BEAT_SCHEDULER.format(value=scheduler)) == 1
    assert not (tmp_path / "celerybeat-schedule").exists()  # nothing is kept in it
