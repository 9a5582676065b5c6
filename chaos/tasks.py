"""The tasks the chaos workers run, and the app they are registered on.

``create(settings)`` builds the app: the workers build it from their environment (``chaos.app``),
the chaos process from explicit settings, so both agree on the broker, the lease, the key prefix
and the signing key. Every run appends ``"<task id> <pid> <node>"`` to ``$CHAOS_RUN_LOG`` with
one ``O_APPEND`` write, atomic for a line this short, so runs are counted exactly across
processes; every beat fire that runs appends ``"<due> <pid> <node>"`` to ``$CHAOS_BEAT_LOG``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celeriac import Celeriac, Task

NOTE, POISON, TICK = "chaos.note", "chaos.poison", "chaos.tick"
RUN_LOG_ENV, BEAT_LOG_ENV = "CHAOS_RUN_LOG", "CHAOS_BEAT_LOG"
_BROKER_ENV, _LEASE_ENV, _PREFIX_ENV = "CELERIAC_BROKER_URL", "CHAOS_LEASE", "CHAOS_KEYPREFIX"
_KEY_ENV, _BEAT_ENV = "CHAOS_SECURITY_KEY", "CHAOS_BEAT"
SHUTDOWN_TIMEOUT = 5.0  # seconds a stopped worker gives its running tasks (they are short)


@dataclass(frozen=True)
class AppSettings:
    """What the chaos process and its workers must agree on."""

    broker_url: str
    lease: float = 2.0
    keyprefix: str = ""
    security_key: str | None = None
    beat: bool = False  # the "tick" entry fires every second

    def environment(self) -> dict[str, str]:
        """These settings as the environment variables ``from_environment`` reads."""
        env = {_BROKER_ENV: self.broker_url, _LEASE_ENV: repr(self.lease)}
        env[_PREFIX_ENV] = self.keyprefix
        if self.security_key:
            env[_KEY_ENV] = self.security_key
        if self.beat:
            env[_BEAT_ENV] = "1"
        return env

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> AppSettings:
        """The settings ``environment`` wrote (a worker's view)."""
        return cls(
            broker_url=env.get(_BROKER_ENV, ""),
            lease=float(env.get(_LEASE_ENV, "2")),
            keyprefix=env.get(_PREFIX_ENV, ""),
            security_key=env.get(_KEY_ENV) or None,
            beat=env.get(_BEAT_ENV) == "1",
        )


def _append(variable: str, line: str) -> None:
    fd = os.open(os.environ[variable], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def note(self: Task[Any, Any], seq: int, seconds: float) -> int:
    """Log this run, sleep ``seconds``, and return ``seq`` (the value the ledger expects)."""
    _append(RUN_LOG_ENV, f"{self.request.id} {os.getpid()} {self.request.hostname}\n")
    time.sleep(seconds)
    return seq


def poison(self: Task[Any, Any]) -> None:
    """Log this run, then kill the process running it, every time."""
    _append(RUN_LOG_ENV, f"{self.request.id} {os.getpid()} {self.request.hostname}\n")
    os.kill(os.getpid(), signal.SIGKILL)


def tick(self: Task[Any, Any]) -> None:
    """Log which beat fire this is (beat's ``beat_due`` header) and who ran it."""
    due = self.request.headers.get("beat_due")
    _append(BEAT_LOG_ENV, f"{due} {os.getpid()} {self.request.hostname}\n")


def create(settings: AppSettings) -> Celeriac:
    """The chaos app on ``settings``, with its three tasks registered."""
    app = Celeriac("chaos", broker=settings.broker_url)
    options: dict[str, Any] = {"lease_seconds": settings.lease}
    if settings.keyprefix:
        options["global_keyprefix"] = settings.keyprefix
    app.conf.broker_transport_options = options
    app.conf.worker_shutdown_timeout = SHUTDOWN_TIMEOUT
    if settings.security_key:
        app.conf.security_key = settings.security_key
    for name, function in ((NOTE, note), (POISON, poison), (TICK, tick)):
        app.task(name=name, bind=True)(function)
    if settings.beat:
        app.conf.beat_max_loop_interval = 0.5
        app.conf.beat_schedule = {
            "tick": {"task": TICK, "schedule": 1.0, "options": {"expires": 30}}
        }
    return app
