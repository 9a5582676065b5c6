"""Beat as users run it: ``celeriac beat`` and ``worker -B`` processes, and the ``schedule``
commands, on the tasks of ``tests/apps/timed.py``."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from celeriac import Celeriac
from support.processes import CELERIAC, WorkerProcess, run_cli
from support.waiting import wait_for


class BeatProcess(WorkerProcess):
    """``celeriac -A timed beat`` in a subprocess (it prints "ready:" as a worker does)."""

    def __init__(self, broker_url: str, *args: str, **env: str) -> None:
        super().__init__(broker_url, app="timed", **env)
        self.command = [CELERIAC, "-A", "timed", "beat", "-l", "info", *args]


@dataclass(frozen=True)
class Run:
    entry: str
    due: float | None
    ran_at: float
    node: str


def runs(log: Path, entry: str | None = None) -> list[Run]:
    """The runs logged so far (of ``entry`` only, if given), in the order they ran."""
    if not log.exists():
        return []
    found = []
    for line in log.read_text().splitlines():
        name, due, ran_at, _pid, node = line.split()
        if entry is None or name == entry:
            found.append(Run(name, None if due == "None" else float(due), float(ran_at), node))
    return found


def settled(log: Path, client: Celeriac) -> None:
    """Wait until the worker has run everything that was sent."""

    def quiet() -> bool:
        before = len(runs(log))
        time.sleep(0.5)
        waiting = sum(client.broker.queue_lengths(["celeriac"]).values())
        return waiting == 0 and len(runs(log)) == before

    assert wait_for(quiet, 15), "the worker did not run what beat sent"


# Seconds both beats run, then the survivor alone. Beat has no leader and no lease: every beat
# tries every fire and the broker takes the first (``publish_once``), so the survivor needs no
# time to take over, and a few contested fires check "once" as well as twenty would.
BOTH_RUN, SURVIVOR_RUNS = 3.0, 3.0


def test_two_beats_send_every_second_once_and_survive_a_kill(
    broker_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    env = {"CELERIAC_TEST_BEAT_LOG": str(log)}
    client = Celeriac("client", broker=broker_url)
    with WorkerProcess(broker_url, "-c", "4", "-P", "threads", app="timed", **env):
        first = BeatProcess(broker_url, **env).start()
        started = time.time()
        second = BeatProcess(broker_url, **env).start()
        try:
            time.sleep(BOTH_RUN)
            first.signal(signal.SIGKILL)  # no warning, no clean-up: the other goes on alone
            killed = time.time()
            first.wait(10)
            time.sleep(max(0.0, killed + SURVIVOR_RUNS - time.time()))
            ended = time.time()
            second.signal(signal.SIGTERM)
            assert second.wait(10) == 0
        finally:
            first.stop()
            second.stop()
        settled(log, client)
    client.close()
    ticks = runs(log, "tick")
    dues = sorted(run.due for run in ticks if run.due is not None)
    assert len(dues) == len(ticks)
    assert len(set(dues)) == len(dues), "a second had two runs"
    assert dues == [dues[0] + i for i in range(len(dues))], "a second had no run"
    assert abs(len(dues) - (ended - started)) <= 1, (len(dues), ended - started)
    assert started - 1 <= dues[0] and dues[-1] <= ended
    assert dues[0] < killed - 1 and dues[-1] > killed + 1, "fires not on both sides of the kill"
    assert all(run.ran_at - run.due < 5 for run in ticks if run.due)


def test_pause_and_run_from_the_command_line(sqlite_url: str, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    env = {"CELERIAC_TEST_BEAT_LOG": str(log)}

    def cli(*args: str) -> str:
        done = run_cli(
            sqlite_url, "-A", "timed", "schedule", *args, CELERIAC_TEST_BEAT_LOG=str(log)
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    worker = WorkerProcess(sqlite_url, "-c", "2", "-P", "threads", app="timed", **env)
    with worker, BeatProcess(sqlite_url, **env):
        assert wait_for(lambda: len(runs(log)) >= 2, 10), "beat did not start firing"
        assert cli("pause", "tick") == "Paused tick.\n"
        time.sleep(0.6)  # a fire sent just before the pause may still be running
        paused_at = len(runs(log))
        time.sleep(2)  # two fires would have run
        assert len(runs(log)) == paused_at, "a paused entry fired"
        listing = cli("list")
        assert "tick" in listing and "paused" in listing and "every 1s" in listing
        task_id = cli("run", "tick").strip()
        assert wait_for(lambda: len(runs(log)) == paused_at + 1, 10), f"run did not fire {task_id}"
        cli("resume", "tick")
        assert wait_for(lambda: len(runs(log)) >= paused_at + 3, 10), "resume did not resume"
    failed = run_cli(
        sqlite_url, "-A", "timed", "schedule", "pause", "nope", CELERIAC_TEST_BEAT_LOG=str(log)
    )
    assert failed.returncode == 1
    assert "no schedule entry named 'nope'" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_worker_with_beat_inside_and_a_direct_queue(sqlite_url: str, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    env = {
        "CELERIAC_TEST_BEAT_LOG": str(log),
        "CELERIAC_TEST_BEAT_ENTRIES": "pulse,direct",
        "CELERIAC_TEST_DIRECT_NODE": "w2@test",
    }
    client = Celeriac("client", broker=sqlite_url)
    w1 = WorkerProcess(sqlite_url, "-B", "-n", "w1@test", "-P", "threads", app="timed", **env)
    w2 = WorkerProcess(sqlite_url, "-n", "w2@test", "-P", "threads", app="timed", **env)
    with w1, w2:
        # "pulse" comes from add_periodic_task in on_after_configure; "direct" goes to w2.dq.
        assert wait_for(lambda: len(runs(log, "pulse")) >= 2, 15), "worker -B did not fire pulse"
        assert wait_for(lambda: len(runs(log, "direct")) >= 3, 15), "no direct runs"
        client.send_task("timed.tick", ("sent-to-w1",), queue="w1@test.dq").get(timeout=10)
    client.close()
    assert {run.node for run in runs(log, "direct")} == {"w2@test"}
    assert {run.node for run in runs(log, "sent-to-w1")} == {"w1@test"}
    assert "ready:" in w1.output and "beat ready" in w1.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["schedule", "remove", "tick"], "defined in the app's code"),
        (["-A", "timed", "beat", "--max-interval", "0"], "0<=x|0.05"),
    ],
)
def test_schedule_commands_fail_with_one_line(
    sqlite_url: str, args: list[str], expected: str
) -> None:
    full = args if args[0] == "-A" else ["-A", "timed", *args]
    done = run_cli(sqlite_url, *full)
    assert done.returncode != 0
    assert any(part in done.stderr for part in expected.split("|")), done.stderr
    assert "Traceback" not in done.stderr
