"""A worker frozen past its lease (SIGSTOP of its main process) while another one runs: the other
takes its tasks, and the frozen one, thawed, must discard what it can no longer record."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from dataclasses import dataclass

from chaos.lab import LEASE, Lab
from chaos.ledger import read_runs
from chaos.scenario import sent_everything
from chaos.tally import Check, Tally
from chaos.traffic import PacedSender


@dataclass(frozen=True)
class Freezes:
    """``freezes`` freezes of ``frozen_for`` seconds (several leases), ``interval`` seconds
    apart, of one of two workers of ``concurrency`` processes, while ``tasks`` calls of
    ``task_seconds`` each are sent evenly over the run."""

    tasks: int
    freezes: int
    frozen_for: float = 3 * LEASE
    interval: float = 2.0
    concurrency: int = 2
    task_seconds: float = 0.2
    drain_timeout: float = 120.0


def worker_frozen(lab: Lab, p: Freezes) -> Tally:
    """Freeze worker 1 again and again; worker 2 runs on."""
    sender = PacedSender(
        lab.sender(p.task_seconds), p.tasks, p.freezes * (p.interval + p.frozen_for)
    )
    with lab.crew(2, p.concurrency) as crew:
        frozen = crew.workers[0]
        sender.start()
        for _ in range(p.freezes):
            time.sleep(p.interval)
            frozen.signal(signal.SIGSTOP)
            time.sleep(p.frozen_for)
            frozen.signal(signal.SIGCONT)
        sender.finish(p.drain_timeout)
        drained = lab.drain(crew, p.drain_timeout)
        discarded = sum("its lease was lost" in line for line in frozen.log_text().splitlines())
    why = f"{p.freezes} freezes x concurrency {p.concurrency}"
    checks = [sent_everything(sender), _rescuer_results(lab, crew.node(0), discarded)]
    return lab.tally(
        crew, budget=p.freezes * p.concurrency, why=why, checks=checks, drained=drained
    )


def _rescuer_results(lab: Lab, frozen_node: str, discarded: int) -> Check:
    """Every task that both workers ran has the other worker's result: the frozen one lost its
    lease, so its outcome was discarded, never stored."""
    nodes: dict[str, set[str]] = defaultdict(set)
    for run in read_runs(lab.run_log):
        nodes[run.task_id].add(run.node)
    both = [task_id for task_id, ran_on in nodes.items() if len(ran_on) > 1]
    records = lab.records(both)
    overwritten = [i for i in both if i in records and records[i].meta.get("worker") == frozen_node]
    detail = f"{len(both)} tasks ran on both; the frozen worker discarded {discarded} outcomes"
    if overwritten:
        detail += f"; its result stands for {len(overwritten)}: {', '.join(overwritten[:3])}"
    return Check("no result from a worker that lost its lease", not overwritten, detail)
