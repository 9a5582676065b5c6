"""``celeriac -A chaos.app <command>`` in a subprocess, as a user runs it: started, killed,
frozen, stopped by its process id only.

Each process runs in its own session, so ``kill`` ends the main process and its pool children
with one signal, as a power cut would. Output goes to a log file (one per start).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # chaos/ is importable from here
CELERIAC = Path(sys.executable).with_name("celeriac")
READY_TIMEOUT = 60.0  # seconds for "ready:" (slow on a busy 2-core machine)
STOP_GRACE = 10.0
TAIL_LINES = 20


class ProcessError(RuntimeError):
    """A process did not start or answer as it should; the message shows its log."""


def children_of(pid: int) -> list[int]:
    """The direct children of ``pid`` (forked by any of its threads)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for thread in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (thread / "children").read_text().split()]
    return found


class CeleriacProcess:
    """One ``celeriac -A chaos.app <args>`` process; ``start`` again after it ended."""

    def __init__(self, name: str, args: Sequence[str], *, env: Mapping[str, str], logs: Path):
        self.name = name
        self.command = [str(CELERIAC), "-A", "chaos.app", *args, "-l", "info"]
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self.env = {**os.environ, **env, "PYTHONPATH": path}
        self.logs = logs
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """The log of the current (or last) start."""
        return self.logs / f"{self.name}.{self.starts}.log"

    @property
    def pid(self) -> int:
        """The main process id."""
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self) -> CeleriacProcess:
        """Start it and wait until it logs that it is ready.

        Raises:
            ProcessError: the command is missing, or it exited or hung before it was ready.
        """
        if not CELERIAC.exists():
            raise ProcessError(f"{CELERIAC} not found: pip install -e '.[dev]' in this venv")
        self.starts += 1
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=str(ROOT),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while b"ready:" not in self.log_path.read_bytes():
            if not self.alive:
                raise ProcessError(f"{self.name} exited before it was ready\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise ProcessError(f"{self.name} not ready in {READY_TIMEOUT}s\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    @property
    def alive(self) -> bool:
        """True while the main process runs (frozen counts as running)."""
        return self.process is not None and self.process.poll() is None

    def children(self) -> list[int]:
        """The pool children's process ids."""
        return children_of(self.pid) if self.alive else []

    def kill(self) -> None:
        """SIGKILL the main process and its children at once, and reap it."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            assert self.process is not None
            self.process.wait(STOP_GRACE)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the main process only (SIGSTOP freezes it, not its children)."""
        if self.alive:
            os.kill(self.pid, signum)

    def stop(self) -> None:
        """SIGTERM it (after a SIGCONT, in case it is frozen); SIGKILL what is left."""
        if self.alive:
            assert self.process is not None
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_GRACE)
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)  # stragglers of its session
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_GRACE)

    def log_text(self) -> str:
        """Everything the current start logged."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines the current start logged, indented."""
        tail = self.log_text().splitlines()[-lines:]
        return "\n".join(f"  | {line}" for line in tail) or "  | (empty log)"
