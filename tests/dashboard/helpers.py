"""What the dashboard tests share: the dashboard of an app in Starlette's test client, and a
real worker of ``tests/dashboard/apps/board.py``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import warnings
from pathlib import Path
from typing import Any

import httpx

with warnings.catch_warnings():
    # Starlette 1.x would rather its test client ran on httpx2; httpx is what is installed.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from celeriac import Celeriac
from celeriac.dashboard import DashboardOptions
from celeriac.dashboard.server import create_app
from support.processes import APPS, CELERIAC, WorkerProcess, environment
from support.waiting import wait_for

BOARD = Path(__file__).resolve().parent / "apps"


def board_env() -> dict[str, str]:
    """The environment that lets a subprocess import ``board`` (and ``jobs``)."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(BOARD), str(APPS)]))}


def board_worker(url: str, *args: str) -> WorkerProcess:
    """``celeriac -A board worker`` on ``url`` (not started)."""
    return WorkerProcess(url, "-c", "2", *args, app="board", **board_env())


class Dashboard:
    """The dashboard of an app in a test client, with its CSRF token in hand."""

    def __init__(self, app: Celeriac, options: DashboardOptions | None = None) -> None:
        self.client = TestClient(create_app(app, options), base_url="http://127.0.0.1:5555")
        self.csrf = ""

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """A POST as the dashboard's own page makes it: same origin, with the CSRF token."""
        if not self.csrf:
            self.csrf = self.client.get("/api/csrf").json()["token"]
        headers = {"X-CSRF-Token": self.csrf, "Origin": "http://127.0.0.1:5555"}
        return self.client.post(path, json=body or {}, headers=headers, **kwargs)


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DashboardProcess:
    """``celeriac [-A board] dashboard --port N ...`` in a subprocess, as a user starts it."""

    def __init__(self, url: str, *args: str, app: str | None = "board") -> None:
        self.port = free_port()
        head = [CELERIAC, "-A", app, "dashboard"] if app else [CELERIAC, "dashboard", "-b", url]
        self.command = [*head, "--port", str(self.port), *args]
        self.env = environment(url, **board_env())
        self.process: subprocess.Popen[str] | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> DashboardProcess:
        """Start it and wait until it answers."""
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=str(APPS),
        )
        assert self.process.stdout is not None
        self.ready_line = self.process.stdout.readline().strip()
        # Keep reading, so that what uvicorn logs never fills the pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        answered = wait_for(self._answers, timeout)
        if not answered:
            self.stop()
            raise AssertionError(f"the dashboard did not answer: {self.ready_line}")
        return self

    def _answers(self) -> bool:
        try:
            return httpx.get(self.base + "/api/csrf", timeout=2).status_code in (200, 401)
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL if it lingers)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> DashboardProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
