"""Every scenario, in the order a run takes them, with its full and short parameters.

The short form (``--short``, what CI runs) keeps every fault but fewer of them, and fewer tasks,
so that both brokers together take under five minutes on two cores.
"""

from __future__ import annotations

from typing import Any

from chaos.scenario import Scenario
from chaos.scenarios.beats import Beats, two_beats
from chaos.scenarios.broker import Outages, broker_frozen, broker_restart
from chaos.scenarios.clients import Crowd, many_clients
from chaos.scenarios.frozen_worker import Freezes, worker_frozen
from chaos.scenarios.kills import KillStorm, child_kill_storm, worker_kill_storm
from chaos.scenarios.malformed import BIG_MESSAGE_LEASE, MalformedMix, malformed_messages
from chaos.scenarios.poison import PoisonMix, poison_tasks
from chaos.targets import FREEZE, RESTART

SCENARIOS: tuple[Scenario[Any], ...] = (
    Scenario(
        "worker-kills",
        "SIGKILL whole workers (main and pool at once) while tasks flow; restart them",
        worker_kill_storm,
        full=KillStorm(tasks=3000, kills=20, interval=1.5),
        short=KillStorm(tasks=500, kills=4, interval=1.5),
    ),
    Scenario(
        "child-kills",
        "SIGKILL single pool children while tasks flow",
        child_kill_storm,
        full=KillStorm(tasks=2000, kills=30, interval=0.5, task_seconds=0.05),
        short=KillStorm(tasks=400, kills=8, interval=0.5, task_seconds=0.05),
    ),
    Scenario(
        "broker-restart",
        "SIGKILL redis-server and start it again from its append-only file",
        broker_restart,
        full=Outages(tasks=2000, outages=5, down=1.0),
        short=Outages(tasks=400, outages=2, down=1.0),
        needs=(RESTART,),
    ),
    Scenario(
        "broker-frozen",
        "freeze the broker past the lease (SIGSTOP Redis; hold SQLite's write lock)",
        broker_frozen,
        full=Outages(tasks=1500, outages=3, down=3.0),
        short=Outages(tasks=300, outages=1, down=3.0),
        needs=(FREEZE,),
    ),
    Scenario(
        "worker-frozen",
        "SIGSTOP one worker for three leases while another runs; SIGCONT it",
        worker_frozen,
        full=Freezes(tasks=600, freezes=3),
        short=Freezes(tasks=150, freezes=1),
    ),
    Scenario(
        "poison",
        "tasks that SIGKILL their own process, among good ones",
        poison_tasks,
        full=PoisonMix(tasks=1000, poison=10),
        short=PoisonMix(tasks=200, poison=3),
    ),
    Scenario(
        "malformed",
        "malformed, oversized, unsigned and forged messages written into the broker",
        malformed_messages,
        full=MalformedMix(good_between=20),
        short=MalformedMix(good_between=5),
        lease=BIG_MESSAGE_LEASE,
        signed=True,
    ),
    Scenario(
        "many-clients",
        "20 client processes sending at the same instant",
        many_clients,
        full=Crowd(clients=20, tasks_each=250),
        short=Crowd(clients=20, tasks_each=20),
    ),
    Scenario(
        "two-beats",
        "two beats, one SIGKILLed: every due fire sent once",
        two_beats,
        full=Beats(together=10.0, alone=10.0),
        short=Beats(together=4.0, alone=4.0),
        beat=True,
    ),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
