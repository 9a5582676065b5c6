"""A scenario: a function that causes one kind of fault on a lab and returns its tally, with
the parameters of its full and its short form, and what it needs of the broker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from chaos.lab import LEASE, Lab
from chaos.tally import Check, Tally
from chaos.traffic import PacedSender

P = TypeVar("P")


@dataclass(frozen=True)
class Scenario(Generic[P]):
    """``run(lab, params)`` with ``full`` or ``short`` params. ``needs`` names the faults the
    broker must let the run cause (``targets.RESTART``, ``targets.FREEZE``); ``lease`` is the
    workers' lease in seconds, ``signed`` turns message signing on, ``beat`` the beat schedule."""

    name: str
    summary: str
    run: Callable[[Lab, P], Tally]
    full: P
    short: P
    needs: tuple[str, ...] = ()
    lease: float = LEASE
    signed: bool = False
    beat: bool = False


def sent_everything(sender: PacedSender) -> Check:
    """Every publish returned (none raised, the sender thread ended)."""
    problems = [f"{len(sender.failed)} publishes raised"] if sender.failed else []
    if sender.failed:
        problems.append(f"first: {sender.failed[0]}")
    if sender.error is not None:
        problems.append(f"the sender stopped: {type(sender.error).__name__}: {sender.error}")
    if sender.is_alive():
        problems.append("the sender was still sending")
    return Check("every publish returned", not problems, "; ".join(problems))
