"""Kill storms: SIGKILL whole workers (main process and pool at once), or single pool children,
again and again while tasks flow."""

from __future__ import annotations

import time
from dataclasses import dataclass

from chaos.lab import Lab
from chaos.scenario import sent_everything
from chaos.tally import Tally
from chaos.traffic import PacedSender


@dataclass(frozen=True)
class KillStorm:
    """``kills`` kills, ``interval`` seconds apart, while ``tasks`` calls of ``task_seconds``
    each are sent evenly over the storm, to ``workers`` workers of ``concurrency`` processes."""

    tasks: int
    kills: int
    interval: float
    workers: int = 2
    concurrency: int = 2
    task_seconds: float = 0.02
    drain_timeout: float = 120.0


def worker_kill_storm(lab: Lab, p: KillStorm) -> Tally:
    """Kill a whole worker, start it again, repeat. Its tasks come back after the lease."""
    sender = PacedSender(lab.sender(p.task_seconds), p.tasks, p.kills * p.interval)
    with lab.crew(p.workers, p.concurrency) as crew:
        sender.start()
        for _ in range(p.kills):
            time.sleep(p.interval)
            crew.kill_one()
        sender.finish(p.drain_timeout)
        drained = lab.drain(crew, p.drain_timeout)
    why = f"{p.kills} worker kills x concurrency {p.concurrency}"
    checks = [sent_everything(sender)]
    return lab.tally(crew, budget=p.kills * p.concurrency, why=why, checks=checks, drained=drained)


def child_kill_storm(lab: Lab, p: KillStorm) -> Tally:
    """Kill one pool child; its worker replaces it and runs its task again."""
    sender = PacedSender(lab.sender(p.task_seconds), p.tasks, p.kills * p.interval)
    kills = 0
    with lab.crew(p.workers, p.concurrency) as crew:
        sender.start()
        for _ in range(p.kills):
            time.sleep(p.interval)
            kills += crew.kill_child()
            crew.watch()
        sender.finish(p.drain_timeout)
        drained = lab.drain(crew, p.drain_timeout)
    why = f"{kills} child kills x 1 task each"
    return lab.tally(crew, budget=kills, why=why, checks=[sent_everything(sender)], drained=drained)
