"""Many clients at once: separate processes, each with its own connections, all sending in the
same instant while the workers run."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from celeriac.exceptions import PublishError
from chaos.lab import Lab
from chaos.tally import Check, Tally
from chaos.tasks import NOTE, AppSettings, create

START_DELAY = 3.0  # seconds for the client processes to start before they all send at once


@dataclass(frozen=True)
class Crowd:
    """``clients`` processes sending ``tasks_each`` calls each, to ``workers`` workers of
    ``concurrency`` processes."""

    clients: int
    tasks_each: int
    workers: int = 2
    concurrency: int = 2
    drain_timeout: float = 120.0


Sent = tuple[list[tuple[str, int]], list[str]]  # (id, seq) of each call sent; ids that raised


def send_from_a_client(settings: AppSettings, first_seq: int, count: int, at: float) -> Sent:
    """In a client process: wait until ``at`` (epoch seconds), then send ``count`` calls."""
    client = create(settings)
    sent, failed = [], []
    time.sleep(max(0.0, at - time.time()))
    for seq in range(first_seq, first_seq + count):
        task_id = str(uuid.uuid4())
        try:
            client.send_task(NOTE, (seq, 0.0), task_id=task_id)
        except PublishError:
            failed.append(task_id)
            continue
        sent.append((task_id, seq))
    client.close()
    return sent, failed


def many_clients(lab: Lab, p: Crowd) -> Tally:
    """Every call each client was told was sent runs once."""
    context = multiprocessing.get_context("spawn")
    at = time.time() + START_DELAY
    with (
        lab.crew(p.workers, p.concurrency) as crew,
        ProcessPoolExecutor(p.clients, mp_context=context) as pool,
    ):
        futures = [
            pool.submit(send_from_a_client, lab.settings, 1 + i * p.tasks_each, p.tasks_each, at)
            for i in range(p.clients)
        ]
        failed = 0
        for future in futures:
            sent, raised = future.result(timeout=p.drain_timeout)
            for task_id, seq in sent:
                lab.ledger.enqueued(task_id, seq)
            lab.ledger.indeterminate.update(raised)
            failed += len(raised)
        drained = lab.drain(crew, p.drain_timeout)
    detail = f"{failed} publishes raised" if failed else ""
    checks = [Check("every publish returned", not failed, detail)]
    return lab.tally(crew, budget=0, why="no worker was killed", checks=checks, drained=drained)
