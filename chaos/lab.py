"""What a scenario works in: a fresh namespace on the broker under test, a client app, a run
log, the workers and beats it starts, and the end of it all: drain, then audit."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from celeriac import Celeriac
from celeriac.backends.base import ResultRecord
from chaos.crew import Crew
from chaos.ledger import Audit, Ledger, read_runs
from chaos.processes import CeleriacProcess
from chaos.tally import Check, Tally
from chaos.targets import Namespace, Target
from chaos.tasks import BEAT_LOG_ENV, RUN_LOG_ENV, AppSettings, create
from chaos.traffic import Sender

QUEUE = "celeriac"
SECURITY_KEY = "chaos-signing-key"  # for the scenarios that run with signing on
LEASE = 2.0  # seconds: a dead worker's tasks come back quickly
POLL = 0.25
MAX_CRASHES = 5  # a worker that keeps crashing on a message will not drain the queue


class Lab:
    """One scenario on one target; close it to stop its client and delete its namespace."""

    def __init__(
        self,
        target: Target,
        workdir: Path,
        scenario: str,
        *,
        lease: float = LEASE,
        signed: bool = False,
        beat: bool = False,
    ) -> None:
        self.target = target
        self.scenario = scenario
        self.namespace: Namespace = target.namespace(scenario)
        self.directory = workdir / target.kind / scenario
        self.directory.mkdir(parents=True, exist_ok=True)
        self.settings = AppSettings(
            broker_url=self.namespace.broker_url,
            lease=lease,
            keyprefix=self.namespace.keyprefix,
            security_key=SECURITY_KEY if signed else None,
            beat=beat,
        )
        self.run_log = self.directory / "runs.log"
        self.beat_log = self.directory / "beat.log"
        self.env = {
            **self.settings.environment(),
            RUN_LOG_ENV: str(self.run_log),
            BEAT_LOG_ENV: str(self.beat_log),
        }
        self.client: Celeriac = create(self.settings)
        self.ledger = Ledger()

    def sender(self, seconds: float = 0.0) -> Sender:
        """A sender of ``chaos.note`` calls that sleep ``seconds``, into this lab's ledger."""
        return Sender(self.client, self.ledger, seconds=seconds)

    def crew(
        self, count: int, concurrency: int, *, role: str = "worker", pool: str = "prefork"
    ) -> Crew:
        """Workers for this lab (started when the ``with`` block begins)."""
        return Crew(count, concurrency, env=self.env, logs=self.directory, role=role, pool=pool)

    def beat(self, name: str) -> CeleriacProcess:
        """A ``celeriac beat`` process for this lab (not started)."""
        return CeleriacProcess(name, ["beat"], env=self.env, logs=self.directory)

    def queue_length(self) -> int:
        """Messages in the queue: ready, delayed and leased."""
        return self.client.broker.queue_lengths([QUEUE])[QUEUE]

    def drain(self, crew: Crew, timeout: float) -> bool:
        """Wait until every id that must end has a final result and the queue is empty,
        restarting crashed workers meanwhile; False if ``timeout`` seconds passed first, or
        the workers crashed more than ``MAX_CRASHES`` times."""
        waiting = set(self.ledger.expected) | self.ledger.doomed
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(crew.crashes) <= MAX_CRASHES:
            crew.watch()
            records = self.records(waiting)
            waiting -= {task_id for task_id, record in records.items() if record.ready}
            if not waiting and self.queue_length() == 0:
                return True
            time.sleep(POLL)
        return False

    def records(self, task_ids: Iterable[str]) -> dict[str, ResultRecord]:
        """The stored results of these ids (asked for 1000 at a time)."""
        ids, found = sorted(task_ids), {}
        for start in range(0, len(ids), 1000):
            found.update(self.client.backend.get_many(ids[start : start + 1000]))
        return found

    def decode(self, record: ResultRecord) -> Any:
        """A SUCCESS record's value."""
        return self.client.serializer.loads(record.content_type, record.payload)

    def tally(
        self, crew: Crew, *, budget: int, why: str, checks: list[Check], drained: bool
    ) -> Tally:
        """Audit the ledger against the run log and the stored results (call it once the
        workers stopped): the scenario's row in the report. ``why`` explains the budget."""
        runs = read_runs(self.run_log)
        records = self.records(self.ledger.known() | {run.task_id for run in runs})
        audit = Audit(self.ledger, runs, records)
        counts = audit.counts(self.decode)
        checks = [*checks, no_crash(crew)]
        if not drained:
            checks.append(Check("drained in time", False, "queue not empty or results missing"))
        return Tally(
            self.scenario,
            counts,
            budget=budget,
            budget_reason=why,
            checks=checks,
            problems=audit.summary(),
        )

    def close(self) -> None:
        """Close the client and delete the scenario's keys or file."""
        self.client.close()
        self.target.discard(self.namespace)


def no_crash(crew: Crew) -> Check:
    """No worker exited unasked: each main process lived until it was killed or stopped."""
    detail = f"{len(crew.crashes)} exits; first: {crew.crashes[0]}" if crew.crashes else ""
    return Check("no worker exited unasked", not crew.crashes, detail)
