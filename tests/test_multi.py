"""``celeriac multi`` and ``worker --detach --pidfile --logfile``, as Celery's daemonization
guide runs them: real detached workers on a SQLite broker in the test's folder."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celeriac
from celeriac.cli.daemon import DaemonOptions, expand, pid_alive, read_pid, with_settings
from celeriac.cli.multi import nodes
from support.processes import APPS, CELERIAC, WorkerProcess, environment, run_cli
from support.stores import redis_test_url
from support.waiting import wait_for

HOST = os.uname().nodename


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """Where pidfiles and logs go; any worker still named there is killed at the end."""
    folder = tmp_path / "run"
    folder.mkdir()
    yield folder
    for pidfile in folder.glob("*.pid"):
        pid = read_pid(pidfile)
        if pid is not None and pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def multi(broker: str, run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    action, *rest = args
    return run_cli(
        broker,
        "multi",
        action,
        *rest,
        "-A",
        "jobs",
        f"--pidfile={run_dir}/%n.pid",
        f"--logfile={run_dir}/%n%I.log",
        timeout=120,
    )


def pids(run_dir: Path) -> dict[str, int]:
    found = {p.stem: read_pid(p) for p in run_dir.glob("*.pid")}
    return {name: pid for name, pid in found.items() if pid is not None}


def test_nodes_as_celery_multi_names_them() -> None:
    found = nodes(["3", "-A", "proj", "-l", "INFO", "-c:1", "4", "--pidfile=/run/%n.pid"])
    assert [n.name for n in found] == [f"celeriac{i}@{HOST}" for i in (1, 2, 3)]
    first = found[0].argv
    assert first[:3] == ("-A", "proj", "worker")
    assert first[first.index("-c") + 1] == "4"
    assert "-c" not in found[1].argv
    assert found[2].pidfile == Path("/run/celeriac3.pid")
    named = nodes(["w1", "w2@box", "-Q:w2", "slow"])
    assert [n.name for n in named] == [f"w1@{HOST}", "w2@box"]
    assert "-Q" not in named[0].argv and named[1].argv[-2:] == ("-Q", "slow")
    assert expand("/var/log/%n%I.log", "w1@box.example.com") == "/var/log/w1.log"
    assert expand("%h-%d", "w1@box.example.com") == "w1@box.example.com-example.com"


def test_show_and_names(sqlite_url: str, run_dir: Path) -> None:
    shown = multi(sqlite_url, run_dir, "names", "w1", "w2")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [f"w1@{HOST}", f"w2@{HOST}"]
    command = multi(sqlite_url, run_dir, "show", "w1").stdout
    assert f"worker --detach --pidfile {run_dir}/w1.pid --logfile {run_dir}/w1.log" in command


def test_start_restart_stopwait(sqlite_url: str, client: Celeriac, run_dir: Path) -> None:
    started = multi(sqlite_url, run_dir, "start", "w1", "w2", "-l", "INFO", "-c", "1")
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"w1@{HOST}: OK" in started.stdout
    first = pids(run_dir)
    assert set(first) == {"w1", "w2"}
    assert all(pid_alive(pid) for pid in first.values())
    results = [client.send_task("jobs.add", (i, i)) for i in range(6)]
    assert [r.get(timeout=30) for r in results] == [2 * i for i in range(6)]
    logs = [run_dir / "w1.log", run_dir / "w2.log"]
    assert wait_for(lambda: all(f"@{HOST} ready:" in log.read_text() for log in logs), 30)

    restarted = multi(sqlite_url, run_dir, "restart", "w1", "w2", "-l", "INFO", "-c", "1")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    second = pids(run_dir)
    assert set(second) == {"w1", "w2"}
    assert not any(pid_alive(pid) for pid in first.values())
    assert set(second.values()).isdisjoint(first.values())
    assert client.send_task("jobs.add", (20, 22)).get(timeout=30) == 42

    stopped = multi(sqlite_url, run_dir, "stopwait", "w1", "w2")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not any(pid_alive(pid) for pid in second.values())
    assert list(run_dir.glob("*.pid")) == []
    assert "stopped" in (run_dir / "w1.log").read_text()


def test_stop_and_kill_of_nodes_that_are_down_say_so(sqlite_url: str, run_dir: Path) -> None:
    stopped = multi(sqlite_url, run_dir, "stop", "w1")
    assert stopped.returncode == 0
    assert f"w1@{HOST}: DOWN" in stopped.stdout


def test_a_live_pidfile_refuses_a_second_worker_and_a_stale_one_is_replaced(
    sqlite_url: str, run_dir: Path
) -> None:
    pidfile = run_dir / "w.pid"
    gone = subprocess.Popen(["true"])
    gone.wait()
    pidfile.write_text(f"{gone.pid}\n")  # stale: that process has exited
    args = ["-A", "jobs", "worker", "-c", "1", "--detach", f"--pidfile={pidfile}", "-n", "w@%h"]
    first = run_cli(sqlite_url, *args, f"--logfile={run_dir}/w.log")
    assert first.returncode == 0, first.stderr
    assert wait_for(lambda: read_pid(pidfile) not in (None, gone.pid), 30)
    running = read_pid(pidfile)
    assert running is not None and pid_alive(running)

    second = run_cli(sqlite_url, *args)
    assert second.returncode == 1
    assert f"names process {running}, which is running" in second.stderr
    assert read_pid(pidfile) == running
    os.kill(running, signal.SIGTERM)
    assert wait_for(lambda: not pid_alive(running), 30)
    assert not pidfile.exists()


def test_logfile_and_pidfile_without_detach(
    sqlite_url: str, client: Celeriac, run_dir: Path
) -> None:
    pidfile, logfile = run_dir / "fg.pid", run_dir / "fg.log"
    files = [f"--pidfile={pidfile}", f"--logfile={logfile}"]
    process = subprocess.Popen(
        [CELERIAC, "-A", "jobs", "worker", "-l", "INFO", "-c", "1", *files],
        env=environment(sqlite_url),
        cwd=str(APPS),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: logfile.exists() and "ready:" in logfile.read_text(), 30)
        assert read_pid(pidfile) == process.pid
        assert client.send_task("jobs.add", (1, 2)).get(timeout=30) == 3
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert out == err == ""  # everything went to the log
    assert "jobs.add" in logfile.read_text()
    assert not pidfile.exists()


def _reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner may enter every folder above ``path``."""
    return all(os.stat(folder).st_mode & 0o001 for folder in path.resolve().parents)


def _identity_of_a_worker(*flags: str, run_dir: Path) -> tuple[list[int], str]:
    prefix = f"multi-{os.getpid()}-{id(run_dir)}:"
    client = Celeriac("client", broker=redis_test_url())
    client.conf.broker_transport_options = {"global_keyprefix": prefix}
    try:
        with WorkerProcess(
            redis_test_url(), "-c", "1", *flags, CELERIAC_TEST_KEYPREFIX=prefix
        ) as worker:
            return client.send_task("jobs.identity").get(timeout=30), worker.output
    finally:
        client.close()


@pytest.mark.skipif(os.getuid() != 0, reason="switching users needs root")
def test_gid_and_umask_are_what_tasks_run_with(run_dir: Path) -> None:
    """An init script starts the worker as root; --gid and --umask hold for its tasks."""
    nogroup = grp.getgrgid(pwd.getpwnam("nobody").pw_gid)
    identity, output = _identity_of_a_worker(
        *("--gid", nogroup.gr_name, "--umask", "027", "--executable", "/usr/bin/python3"),
        run_dir=run_dir,
    )
    assert identity == [0, nogroup.gr_gid, 0o027]
    assert "--executable /usr/bin/python3 is not used" in output


@pytest.mark.skipif(os.getuid() != 0, reason="switching users needs root")
def test_uid_is_what_tasks_run_with(run_dir: Path) -> None:
    """Its tasks do not run as root: --uid nobody (who must be able to read Python)."""
    if not _reachable_by_others(Path(sys.base_prefix)):
        pytest.skip(
            f"nobody cannot read this Python ({sys.base_prefix}): a folder above is private"
        )
    nobody = pwd.getpwnam("nobody")
    identity, _ = _identity_of_a_worker("--uid", "nobody", run_dir=run_dir)
    assert identity == [nobody.pw_uid, nobody.pw_gid, 0o022]


def test_a_user_that_does_not_exist_is_one_line(sqlite_url: str) -> None:
    done = run_cli(sqlite_url, "-A", "jobs", "worker", "--uid", "no-such-user-here")
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: --uid 'no-such-user-here': no such user"


def test_worker_settings_are_the_defaults_of_the_flags() -> None:
    app = Celeriac("t", broker="memory://", worker_pidfile="/run/%n.pid", worker_umask=0o27)
    given = DaemonOptions(pidfile="/elsewhere/%n.pid", uid="nobody")
    assert with_settings(given, app.conf) == DaemonOptions(
        pidfile="/elsewhere/%n.pid", uid="nobody", umask="0o27"
    )
    assert with_settings(DaemonOptions(), app.conf).pidfile == "/run/%n.pid"
