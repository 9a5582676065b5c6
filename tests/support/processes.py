"""Running the real ``celeriac`` command in a subprocess, as a user would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

APPS = Path(__file__).resolve().parent.parent / "apps"
CELERIAC = str(Path(sys.executable).with_name("celeriac"))


def environment(broker_url: str, **extra: str) -> dict[str, str]:
    """The environment for a subprocess that uses ``broker_url`` and finds ``tests/apps``."""
    env = dict(os.environ)
    env["CELERIAC_BROKER_URL"] = broker_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APPS), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


EVENTS_PROCESS = "celeriac-events"  # celeriac.worker.history_process.PROCESS_NAME


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:  # it exited meanwhile
        return ""


class WorkerProcess:
    """``celeriac -A <app> worker ...`` in a subprocess, with its log captured."""

    def __init__(self, broker_url: str, *args: str, app: str = "jobs", **env: str) -> None:
        self.command = [CELERIAC, "-A", app, "worker", "-l", "info", *args]
        self.env = environment(broker_url, **env)
        self.cwd = APPS  # where the command runs (a copied project, say)
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self, ready_timeout: float = 30.0) -> WorkerProcess:
        """Start the worker and wait until it says it is ready."""
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=str(self.cwd),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.wait_for("ready:", ready_timeout)
        except BaseException:
            self.stop()  # never leave a half-started worker behind
            raise
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        """Everything the worker printed so far."""
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        """Wait until ``text`` appears in the output.

        Raises:
            AssertionError: it did not appear in time, or the worker exited.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.process is not None and self.process.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(f"worker exited before printing {text!r}:\n{self.output}")
            time.sleep(0.02)
        raise AssertionError(f"worker did not print {text!r} within {timeout}s:\n{self.output}")

    @property
    def pid(self) -> int:
        """The main process id."""
        assert self.process is not None
        return self.process.pid

    def children(self) -> list[int]:
        """Process ids of the pool children (the task events' process, ``celeriac-events``,
        is not one of them: see ``events_process``)."""
        return [pid for pid in self._child_ids() if _comm(pid) != EVENTS_PROCESS]

    def events_process(self) -> int | None:
        """The process id of the worker's task events process, if it has one."""
        found = [pid for pid in self._child_ids() if _comm(pid) == EVENTS_PROCESS]
        return found[0] if found else None

    def _child_ids(self) -> list[int]:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except FileNotFoundError:
            return []

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the main process."""
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        """Wait for the worker to exit; return its exit status."""
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        """End the worker and its children, whatever state they are in."""
        if self.process is None or self.process.poll() is not None:
            return
        children = self.children()
        for signum in (signal.SIGCONT, signal.SIGKILL):
            for pid in [self.pid, *children]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
        self.process.wait(10)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc is not None:
            self.add_log_to(exc)

    def add_log_to(self, exc: BaseException, lines: int = 60) -> None:
        """Note the last ``lines`` lines of the log on ``exc``, so a failure in the block (a
        ``get()`` that timed out, say) shows what the worker did; once is enough."""
        exited = self.process is not None and self.process.poll() is not None
        if exited and self._reader is not None:
            self._reader.join(1)  # the last lines may still be in the pipe
        tail = self.lines[-lines:]
        if tail and tail[-1] not in str(exc):
            exc.add_note(f"last {len(tail)} lines of {' '.join(self.command[1:])}:")
            exc.add_note("\n".join(tail))


def run_cli(
    broker_url: str, *args: str, timeout: float = 60.0, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``celeriac <args>`` to completion."""
    return subprocess.run(
        [CELERIAC, *args],
        env=environment(broker_url, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(APPS),
    )


def count_runs(path: Path) -> dict[str, int]:
    """Runs per task id, from a file written by the ``counted`` tasks."""
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            task_id = line.split()[0]
            counts[task_id] = counts.get(task_id, 0) + 1
    return counts
