"""How the Redis broker's calls become script arguments, and script replies become results.

Kept apart from ``redis.py`` so that the broker reads as what it does; the argument layouts
are the ones documented in the headers of ``redis_lua/*.lua``.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from celeriac._redis.connect import as_bytes
from celeriac._redis.keys import BrokerKeys
from celeriac._redis.scripts import Arg
from celeriac.brokers.base import Delivery
from celeriac.message import Message

log = logging.getLogger("celeriac.brokers.redis")


def queue_keys(keys: BrokerKeys, queues: Sequence[str]) -> list[str]:
    """The three keys of each queue, one queue after the other."""
    return [key for queue in queues for key in keys.queue_keys(queue)]


@dataclass(frozen=True)
class SettleOperation:
    """One operation of ``settle.lua``: ``kind`` is ack, requeue, replace or dead."""

    kind: str
    delivery: Delivery
    value: str = ""  # requeue and replace: the ETA ('' = now); dead: the reason
    message: Message | None = None  # replace: the retry's message


def settle_call(
    keys: BrokerKeys, now: str, operations: Sequence[SettleOperation]
) -> tuple[list[str], list[Arg]]:
    """The keys and arguments of ``settle.lua`` for these operations (one call)."""
    names = [s.delivery.queue for s in operations]
    names += [s.message.queue for s in operations if s.message is not None]
    queues = list(dict.fromkeys(names))
    number = {queue: str(n) for n, queue in enumerate(queues, 1)}
    args: list[Arg] = [now, str(len(queues)), *queues]
    for s in operations:
        d, m = s.delivery, s.message
        args += [s.kind, number[d.queue], d.tag, d.token, s.value]
        args += [number[m.queue], str(m.priority), m.encode()] if m else ["", "", ""]
    return [keys.messages, keys.dead, *queue_keys(keys, queues)], args


def log_refusals(
    operations: Sequence[SettleOperation], expected: Sequence[bool]
) -> Callable[[Any], None]:
    """What to do with the flags of batched settle operations: say which ones Redis refused."""

    def check(reply: Any) -> None:
        for s, hoped, flag in zip(operations, expected, as_bytes(reply), strict=True):
            if flag == ord("x"):
                log.error(
                    "%s of message %s refused: its ETA or priority is not valid (%r); the"
                    " message comes back when its lease runs out",
                    s.kind,
                    s.delivery.tag,
                    s.value if s.message is None else (s.value, s.message.priority),
                )
            elif hoped and flag != ord("1"):
                log.warning("%s of message %s refused: its lease was lost", s.kind, s.delivery.tag)

    return check


def deliveries_of(
    queues: Sequence[str], token: str, reply: Any
) -> tuple[list[Delivery], float | None, str]:
    """What a reply of ``fetch.lua`` says: the deliveries; when there are none and the caller
    may wait, the seconds until something in these queues comes due; and the newest broadcast's
    id as the fetch saw it ('' when it did not look). The damaged messages it met are logged."""
    now, due, newest, notes = reply[0], reply[1], reply[2], reply[3]
    for i in range(0, len(notes), 3):
        log.warning(
            "message %s of queue %s was damaged in Redis: %s",
            as_bytes(notes[i]).decode(),
            queues[int(notes[i + 1]) - 1],
            as_bytes(notes[i + 2]).decode(errors="replace"),
        )
    rest = reply[4:]
    deliveries = [
        Delivery(
            as_bytes(rest[i + 3]),
            queues[int(rest[i + 1]) - 1],
            as_bytes(rest[i]).decode(),
            token,
            int(rest[i + 2]),
        )
        for i in range(0, len(rest), 4)
    ]
    due_in = float(due) - float(now) if due else None
    looked = rest and newest is not None
    return deliveries, due_in, (as_bytes(newest).decode() or "0-0") if looked else ""


class Tokens:
    """Lease tokens: unique, not secret (a token says which lease, not who holds it).

    A random part per process, then a counter: cheaper than ``secrets`` on every fetch, and a
    forked child never repeats its parent's tokens.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._prefix = ""
        self._counter = itertools.count(1)

    def new(self) -> str:
        """A token never handed out before."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._prefix = os.urandom(6).hex()
                    self._counter = itertools.count(1)
                    self._pid = os.getpid()
        return f"{self._prefix}{next(self._counter):x}"
