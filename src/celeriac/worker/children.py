"""The main process's record of one prefork child: its pipes and mailbox, the job it runs and
the jobs it was offered, and how a child's exit is told in a log line."""

from __future__ import annotations

import pickle
import signal
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from celeriac.worker.child import PICKLE
from celeriac.worker.frames import FrameReader
from celeriac.worker.mailbox import Mailbox
from celeriac.worker.pool import Job, Running


@dataclass
class ChildProcess:
    """One forked child, as the pool sees it."""

    process: BaseProcess
    conn: Connection  # jobs go down
    outcomes: FrameReader  # outcomes come back
    mailbox: Mailbox
    running: Running | None = None
    # in the mailbox, oldest first; the oldest may be taken already and about to be reported
    offered: deque[Job] = field(default_factory=deque)
    terminate_next: dict[int, int] = field(default_factory=dict)  # offered key -> signal
    retiring: bool = False  # it said its last outcome came: it exits, and gets no more jobs
    depth: int = 0  # how many jobs it may be offered behind the one it runs

    def jobs(self) -> list[Job]:
        """The jobs this child holds: running, then offered."""
        held = [self.running.job] if self.running is not None else []
        return held + list(self.offered)

    def send(self, message: object) -> None:
        """Pickle ``message`` down the pipe (a dead child's exit is reported by its sentinel).

        Raises:
            OSError: the pipe is broken.
        """
        self.conn.send_bytes(pickle.dumps(message, PICKLE))

    def close(self) -> None:
        """Close both pipes."""
        self.conn.close()
        self.outcomes.close()


def describe_exit(code: int | None) -> str:
    """How a process ended, for a log line ("killed by SIGKILL", "ended with exit code 1")."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"ended with exit code {code}"
