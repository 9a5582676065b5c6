"""The workers of one scenario: started, killed and restarted on purpose, and watched for the
exits that were not on purpose (a crash), which are counted and restarted so the run goes on."""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Mapping
from pathlib import Path

from chaos.processes import CeleriacProcess


class Crew:
    """``count`` workers ``<role>-<i>@chaos`` of ``concurrency`` processes each."""

    def __init__(
        self,
        count: int,
        concurrency: int,
        *,
        env: Mapping[str, str],
        logs: Path,
        role: str = "worker",
        pool: str = "prefork",
    ) -> None:
        self.workers = [
            CeleriacProcess(
                f"{role}-{i}",
                ["worker", "-c", str(concurrency), "-P", pool, "-n", f"{role}-{i}@chaos"],
                env=env,
                logs=logs,
            )
            for i in range(1, count + 1)
        ]
        self.crashes: list[str] = []  # one line per exit nobody asked for
        self.random = random.Random(9)  # the same choices on every run

    def __enter__(self) -> Crew:
        try:
            for worker in self.workers:
                worker.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def node(self, index: int) -> str:
        """The node name of worker ``index`` (as results and the run log name it)."""
        return f"{self.workers[index].name}@chaos"

    def kill_one(self) -> None:
        """SIGKILL one worker (main process and children at once), then start it again."""
        worker = self.random.choice(self.workers)
        worker.kill()
        worker.start()

    def kill_child(self) -> bool:
        """SIGKILL one pool child of one worker; False when no worker had a child to kill."""
        candidates = [pid for worker in self.workers for pid in worker.children()]
        if not candidates:
            return False
        try:
            os.kill(self.random.choice(candidates), signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def watch(self) -> None:
        """Restart every worker that exited unasked, noting the crash with its log's tail."""
        for worker in self.workers:
            if worker.process is not None and not worker.alive:
                code = worker.process.returncode
                self.crashes.append(
                    f"{worker.name} (pid {worker.pid}) exited with status {code}:\n"
                    f"{worker.log_tail(8)}"
                )
                worker.start()

    def stop(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL what is left)."""
        for worker in self.workers:
            worker.stop()
