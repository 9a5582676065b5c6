"""Poison tasks: a task that kills the process running it, every time, among good tasks."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

from celeriac.message import peek_id
from chaos.lab import QUEUE, Lab
from chaos.ledger import read_runs
from chaos.tally import Check, Tally
from chaos.tasks import POISON


@dataclass(frozen=True)
class PoisonMix:
    """``poison`` poison tasks spread among ``tasks`` good ones, for ``workers`` workers of
    ``concurrency`` processes."""

    tasks: int
    poison: int
    workers: int = 2
    concurrency: int = 2
    task_seconds: float = 0.01
    drain_timeout: float = 120.0


def poison_tasks(lab: Lab, p: PoisonMix) -> Tally:
    """Each poison task is dead-lettered with FAILURE once it has killed ``task_max_deliveries``
    processes; the good tasks around it run once each."""
    sender = lab.sender(p.task_seconds)
    every = max(1, p.tasks // p.poison)
    with lab.crew(p.workers, p.concurrency) as crew:
        for sent in range(p.tasks):
            if sent % every == 0 and len(lab.ledger.doomed) < p.poison:
                task_id = str(uuid.uuid4())
                lab.client.send_task(POISON, task_id=task_id)
                lab.ledger.doomed.add(task_id)
            sender.send()
        drained = lab.drain(crew, p.drain_timeout)
    checks = [_dead_lettered(lab), _ran_until_given_up(lab)]
    return lab.tally(crew, budget=0, why="no worker was killed", checks=checks, drained=drained)


def _dead_lettered(lab: Lab) -> Check:
    letters = lab.client.broker.dead_letters(limit=10 * len(lab.ledger.doomed) + 100)
    found = {peek_id(letter.body) for letter in letters if letter.queue == QUEUE}
    missing = lab.ledger.doomed - found
    others = {i for i in found if i not in lab.ledger.doomed}
    detail = f"{len(missing)} poison tasks not in the dead letters" if missing else ""
    if others:
        detail += f"{'; ' if detail else ''}{len(others)} other messages dead-lettered"
    return Check("every poison task dead-lettered, nothing else", not detail, detail)


def _ran_until_given_up(lab: Lab) -> Check:
    limit = int(lab.client.conf.task_max_deliveries)
    runs = Counter(run.task_id for run in read_runs(lab.run_log))
    wrong = {i: runs[i] for i in lab.ledger.doomed if runs[i] != limit}
    detail = f"runs {sorted(wrong.values())}, expected {limit} each" if wrong else ""
    return Check(f"every poison task ran task_max_deliveries ({limit}) times", not wrong, detail)
