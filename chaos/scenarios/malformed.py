"""Malformed and forged messages written straight into the broker, among good ones, while the
app signs its messages: each is dead-lettered on its first delivery and nothing else changes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from chaos import forgery
from chaos.forgery import Injected
from chaos.lab import QUEUE, Lab
from chaos.tally import Check, Tally

REAL_TASK_DELAY = 2.0  # seconds: the real task waits while its forged copy goes first
# Writing, fetching and dead-lettering a 100 MB message holds a SQLite file's one write lock
# for seconds, which would let the 2 s leases of the good messages around it run out: that is
# the broker-frozen scenario's fault. Here the lease outlasts the stall, as the default 30 s does.
BIG_MESSAGE_LEASE = 10.0


@dataclass(frozen=True)
class MalformedMix:
    """Good calls in blocks of ``good_between`` around each bad message, for one worker of
    ``concurrency`` processes; the big body is ``megabytes`` MB, the nested header ``depth``
    deep."""

    good_between: int = 5
    megabytes: int = 100
    depth: int = 100_000
    concurrency: int = 2
    drain_timeout: float = 90.0


def malformed_messages(lab: Lab, p: MalformedMix) -> Tally:
    """Good, bad, good, bad, ...; then a real task and its forged copy; then good again."""
    serializer = lab.client.serializer
    bad = [
        *forgery.garbage(serializer, depth=p.depth, megabytes=p.megabytes),
        *forgery.wrong_types(serializer),
        forgery.unsigned(serializer),
    ]
    sender = lab.sender()
    with lab.crew(1, p.concurrency) as crew:
        for injected in bad:
            sender.send_many(p.good_between)
            _inject(lab, injected)
        real = sender.send(countdown=REAL_TASK_DELAY)
        bad.append(forgery.forged(serializer, real))
        _inject(lab, bad[-1])
        sender.send_many(p.good_between)
        drained = lab.drain(crew, p.drain_timeout)
    checks = _dead_lettered(lab, bad)
    return lab.tally(crew, budget=0, why="no worker was killed", checks=checks, drained=drained)


def _inject(lab: Lab, injected: Injected) -> None:
    lab.client.broker.publish(injected.message())
    if injected.task_id is not None:
        lab.ledger.refused.add(injected.task_id)


def _fingerprint(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _dead_lettered(lab: Lab, bad: list[Injected]) -> list[Check]:
    """One check per bad message: it is in the dead letters; and nothing else is."""
    letters = lab.client.broker.dead_letters(limit=len(bad) + 100)
    found = {_fingerprint(letter.body) for letter in letters if letter.queue == QUEUE}
    checks = [Check(f"dead-lettered: {i.name}", _fingerprint(i.raw) in found) for i in bad]
    others = len(found - {_fingerprint(i.raw) for i in bad})
    detail = f"{others} other messages dead-lettered" if others else ""
    checks.append(Check("no good message dead-lettered", not others, detail))
    return checks
