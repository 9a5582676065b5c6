"""The broker goes away while tasks flow: killed with SIGKILL and restarted from its append-only
file (Redis), or frozen for longer than a lease (SIGSTOP on Redis; on SQLite, a connection that
holds the write lock)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from chaos.lab import Lab
from chaos.scenario import sent_everything
from chaos.tally import Tally
from chaos.traffic import PacedSender


@dataclass(frozen=True)
class Outages:
    """``outages`` outages of ``down`` seconds, ``interval`` seconds apart, while ``tasks`` calls
    are sent evenly over the whole run to ``workers`` workers of ``concurrency`` processes."""

    tasks: int
    outages: int
    down: float
    interval: float = 3.0
    workers: int = 2
    concurrency: int = 2
    task_seconds: float = 0.01
    drain_timeout: float = 120.0


def _budget(p: Outages) -> tuple[int, str]:
    # An outage longer than the lease lets every held lease run out at once: each task in
    # flight on any worker may run again.
    slots = p.workers * p.concurrency
    return p.outages * slots, f"{p.outages} outages x {slots} processes in all workers"


def broker_restart(lab: Lab, p: Outages) -> Tally:
    """SIGKILL the Redis server, keep it down ``down`` seconds, start it from its AOF."""
    sender = PacedSender(lab.sender(p.task_seconds), p.tasks, p.outages * (p.interval + p.down))
    with lab.crew(p.workers, p.concurrency) as crew:
        sender.start()
        for _ in range(p.outages):
            time.sleep(p.interval)
            lab.target.restart(p.down)
        sender.finish(p.drain_timeout)
        drained = lab.drain(crew, p.drain_timeout)
    budget, why = _budget(p)
    return lab.tally(
        crew, budget=budget, why=why, checks=[sent_everything(sender)], drained=drained
    )


def broker_frozen(lab: Lab, p: Outages) -> Tally:
    """Freeze the broker ``down`` seconds (past the lease, short of the socket timeout)."""
    sender = PacedSender(lab.sender(p.task_seconds), p.tasks, p.outages * (p.interval + p.down))
    with lab.crew(p.workers, p.concurrency) as crew:
        sender.start()
        for _ in range(p.outages):
            time.sleep(p.interval)
            with lab.target.frozen(lab.namespace):
                time.sleep(p.down)
        sender.finish(p.drain_timeout)
        drained = lab.drain(crew, p.drain_timeout)
    budget, why = _budget(p)
    return lab.tally(
        crew, budget=budget, why=why, checks=[sent_everything(sender)], drained=drained
    )
