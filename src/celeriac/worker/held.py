"""``Held``: the one object that carries a fetched message through the worker, from the fetch to
its settlement, and the one place that decides what becomes of it.

::

    FETCHED --checked--> WAITING --started--> RUNNING --finished--> FINISHED --settled--> SETTLED
       |                  ^    |                |  |                   |
       |                  +----|---returned-----+  |                   +--lease lost--> LOST
       +--refused--> FINISHED  +---refused (revoked while waiting)--> FINISHED
                           WAITING or RUNNING --give_back--> GIVEN_BACK --settled--> SETTLED

``outcome`` is what happened (a real task state), ``action`` what the broker is told
(``execution.Action``), ``record`` whether a state is stored. Middleware hooks in the worker
receive the ``Held`` (``after_fetch``, ``after_skip``, ``after_settle``).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from celeriac.brokers.base import Delivery
from celeriac.exceptions import WorkerLostError
from celeriac.execution import NOTHING, Action, Outcome, failure
from celeriac.message import Message
from celeriac.worker.pool import Ending, Finished


class Stage(enum.Enum):
    """Where a held message is."""

    FETCHED = "fetched"  # taken from the broker under a lease, not checked yet
    WAITING = "waiting"  # checked, waiting for a free process
    RUNNING = "running"  # in the pool: running, or offered to a busy process
    FINISHED = "finished"  # its outcome is known; to be recorded and settled
    GIVEN_BACK = "given_back"  # to be handed back to the broker unstarted
    SETTLED = "settled"  # recorded and settled: the worker holds it no more
    LOST = "lost"  # its lease was lost (another worker may run it): nothing was recorded

    # Members are singletons: hashing by identity is right, and much cheaper than Enum's
    # hash of the name (a stage is looked up several times a task in the main process).
    __hash__ = object.__hash__


_MOVES = {
    Stage.FETCHED: {Stage.WAITING, Stage.FINISHED},
    Stage.WAITING: {Stage.RUNNING, Stage.FINISHED, Stage.GIVEN_BACK},
    Stage.RUNNING: {Stage.WAITING, Stage.FINISHED, Stage.GIVEN_BACK},
    Stage.FINISHED: {Stage.SETTLED, Stage.LOST},
    Stage.GIVEN_BACK: {Stage.SETTLED, Stage.LOST},
    Stage.SETTLED: set(),
    Stage.LOST: set(),
}


@dataclass(eq=False)
class Held:
    """A message the worker holds; see the module docstring.

    ``message`` is None only for bytes that do not decode (or fail their signature check).
    ``key`` names its job in the pool while it runs; ``early_acked`` is set when it was
    acknowledged before running (``acks_late=False``). ``ending`` says how its job left the
    pool; ``expired`` and ``signum`` tell a skipped and a terminated message apart.
    """

    delivery: Delivery
    message: Message | None = None
    stage: Stage = Stage.FETCHED
    outcome: Outcome | None = None
    action: Action | None = None
    record: bool = False
    key: int = 0
    early_acked: bool = False
    ending: Ending | None = None
    expired: bool = False
    signum: int | None = None
    since: float = field(default_factory=time.monotonic)
    # Epoch seconds it was handed to the pool, until told as task-started (middleware/events.py
    # clears it then; a job taken back and started again is stamped again).
    started_at: float | None = None

    @property
    def task_id(self) -> str | None:
        """The message's task id (None when it did not decode)."""
        return None if self.message is None else self.message.id

    @property
    def terminated(self) -> bool:
        """True when its task was killed by ``revoke(terminate=True)``."""
        return self.ending is Ending.TERMINATED

    def _move(self, stage: Stage) -> None:
        if stage not in _MOVES[self.stage]:
            raise RuntimeError(f"a held message cannot go from {self.stage} to {stage}")
        self.stage = stage

    def checked(self, message: Message) -> None:
        """It may run: wait for a process."""
        self.message = message
        self._move(Stage.WAITING)
        self.since = time.monotonic()

    def refused(self, outcome: Outcome, action: Action) -> None:
        """It will not run (refused at intake, or revoked or expired): settle it so."""
        self._conclude(outcome, action, outcome.record)

    def started(self, key: int) -> None:
        """Its job ``key`` went to the pool (started, or offered to a busy process)."""
        self.key = key
        self._move(Stage.RUNNING)
        if self.started_at is None:  # for task-started (middleware/events.py)
            self.started_at = time.time()

    def returned(self) -> None:
        """Its job was taken back unstarted: it waits again, first in line."""
        self._move(Stage.WAITING)

    def give_back(self) -> None:
        """Hand it back to the broker unstarted (its attempt is not counted)."""
        self._move(Stage.GIVEN_BACK)
        self.outcome, self.action, self.record = NOTHING, Action.GIVE_BACK, False

    def finished(self, done: Finished, max_deliveries: int) -> None:
        """Its job ended (not ``RETURNED``): decide what is recorded and what the broker is
        told. A process that died on each of ``max_deliveries`` deliveries marks the message
        as poison: it is dead-lettered."""
        self.ending, outcome, attempt = done.ending, done.outcome, self.delivery.attempt
        action = outcome.action
        if done.ending is Ending.DIED and attempt >= max_deliveries:
            poison = WorkerLostError(
                f"{outcome.reason.removeprefix('WorkerLostError: ')}; the process running it "
                f"died on each of {attempt} deliveries (task_max_deliveries)"
            )
            outcome, action = failure(poison, action=Action.DEAD_LETTER), Action.DEAD_LETTER
        elif done.ending in (Ending.DIED, Ending.SHUTDOWN):
            action = Action.REQUEUE  # no outcome of its own: it runs again
        record = outcome.record and action is not Action.REQUEUE
        if action is Action.ACK and self.message is not None and self.message.ignore_result:
            record = False  # as in Celery, ignore_result stores no state at all
        if self.early_acked and action not in (Action.RETRY, Action.REPLACE):
            # Acknowledged before it ran, it is gone from the broker: a lost run is a failure.
            record = record or (action is Action.REQUEUE and outcome.record)
            action = Action.ALREADY_ACKED
        self._conclude(outcome, action, record)

    def _conclude(self, outcome: Outcome, action: Action, record: bool) -> None:
        self._move(Stage.FINISHED)
        self.outcome, self.action, self.record = outcome, action, record

    def settled(self) -> None:
        """Recorded and settled."""
        self._move(Stage.SETTLED)

    def lost(self) -> None:
        """Its lease was lost before it could be settled: nothing of it is recorded here."""
        self._move(Stage.LOST)
