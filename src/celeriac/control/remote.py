"""``Control``: commands to the workers of an app (``app.control.revoke(...)``, ``ping()``,
``rate_limit(...)``, ``shutdown()`` ...), with Celery's names and reply shapes.

Commands travel as broadcasts: a log in the broker that every worker reads about every 0.2 s.
A revocation is kept a day, so a worker that starts after it was sent still knows it, and its
REVOKED state is written to the result backend at once, so ``AsyncResult.state`` tells the
truth before any worker has read the command. Every other command acts only on the workers
running when it is sent (as in Celery). With ``reply=True`` the workers answer through the
result backend (``control/replies.py``) and the call returns Celery's list of
``{hostname: answer}``, gathered until ``timeout`` passes or ``limit`` workers answered (by
default, as in Celery, as many as ``destination`` names).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.backends.base import ResultRecord
from celeriac.control.commands import (
    COMMAND_TTL,
    RATE_LIMIT_TTL,
    REVOCATION_TTL,
    encode_command,
    signal_number,
)
from celeriac.control.inspect import Inspect
from celeriac.control.replies import gather, new_reply_key
from celeriac.exceptions import TaskRevokedError
from celeriac.queues import queue_names
from celeriac.rates import Rate, parse_rate
from celeriac.serialization import exception_to_dict, json_dumps

if TYPE_CHECKING:
    from celeriac.app import Celeriac

Destination = str | Sequence[str] | None
Replies = list[dict[str, Any]] | None


def _names(destination: Destination) -> list[str] | None:
    if destination is None:
        return None
    return [destination] if isinstance(destination, str) else [str(d) for d in destination]


class Control:
    """Sends commands to the workers of an app; see the module docstring."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app

    def inspect(self, destination: Destination = None, timeout: float = 1.0) -> Inspect:
        """An ``Inspect`` that asks the workers named in ``destination`` (else all)."""
        return Inspect(self, destination=_names(destination), timeout=timeout)

    def broadcast(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        destination: Destination = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        *,
        ttl: float = COMMAND_TTL,
    ) -> Replies:
        """Send ``command`` with ``arguments`` to the workers named in ``destination`` (else
        all); with ``reply``, return their answers (see the module docstring), else None.

        Raises:
            PublishError: the command could not be stored in the broker.
            BackendError: the replies could not be read.
        """
        names = _names(destination)
        reply_to = new_reply_key() if reply else None
        payload = encode_command(command, **(arguments or {}), destination=names, reply_to=reply_to)
        self.app.broker.broadcast(payload, ttl=ttl)
        if reply_to is None:
            return None
        if limit is None and names is not None:
            limit = len(names)
        return gather(self.app.backend, reply_to, timeout=timeout, limit=limit)

    def ping(self, destination: Destination = None, timeout: float = 1.0) -> list[dict[str, Any]]:
        """``[{hostname: {'ok': 'pong'}}]``, one item per worker that answered in time.

        Raises:
            PublishError: the command could not be stored in the broker.
        """
        return self.broadcast("ping", destination=destination, reply=True, timeout=timeout) or []

    def revoke(
        self,
        task_id: str | Sequence[str],
        *,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        destination: Destination = None,
        reply: bool = False,
        timeout: float = 1.0,
    ) -> Replies:
        """Revoke tasks: they will not run; with ``terminate``, a running one is killed with
        ``signal`` (prefork pool only). Every worker remembers the revocation; ``destination``
        only chooses who replies.

        Raises:
            ConfigurationError: an unknown signal.
            PublishError: the command could not be stored in the broker.
        """
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        number = signal_number(signal)
        reason = json_dumps(exception_to_dict(TaskRevokedError("revoked")))
        now = time.time()
        self.app.backend.store_many(
            [ResultRecord(i, states.REVOKED, reason, date_done=now) for i in ids],
            expires=self.app.conf.seconds("result_expires"),
        )
        arguments = {"ids": ids, "terminate": terminate, "signal": number}
        return self.broadcast("revoke", arguments, destination, reply, timeout, ttl=REVOCATION_TTL)

    def terminate(
        self,
        task_id: str | Sequence[str],
        signal: str | int = "SIGTERM",
        *,
        destination: Destination = None,
        reply: bool = False,
        timeout: float = 1.0,
    ) -> Replies:
        """Revoke and kill running tasks (Celery's ``terminate``: ``revoke(terminate=True)``).

        Raises:
            ConfigurationError: an unknown signal.
            PublishError: the command could not be stored in the broker.
        """
        return self.revoke(
            task_id,
            terminate=True,
            signal=signal,
            destination=destination,
            reply=reply,
            timeout=timeout,
        )

    def rate_limit(
        self,
        task_name: str,
        rate_limit: Rate,
        destination: Destination = None,
        reply: bool = False,
        timeout: float = 1.0,
    ) -> Replies:
        """Change the rate limit of ``task_name`` in the running workers, as Celery's:
        ``'10/s'``, ``'100/m'``, ``'1000/h'``, a number a second, or None or 0 for none.

        Raises:
            ConfigurationError: not a rate.
            PublishError: the command could not be stored in the broker.
        """
        parse_rate(rate_limit)
        arguments = {"task": task_name, "rate": rate_limit}
        return self.broadcast(
            "rate_limit", arguments, destination, reply, timeout, ttl=RATE_LIMIT_TTL
        )

    def time_limit(
        self,
        task_name: str,
        soft: float | None = None,
        hard: float | None = None,
        destination: Destination = None,
        reply: bool = False,
        timeout: float = 1.0,
    ) -> Replies:
        """Change the soft and hard time limits (seconds; None: none) of ``task_name`` in the
        running workers, for the calls they start from then on.

        Raises:
            PublishError: the command could not be stored in the broker.
        """
        arguments = {"task_name": task_name, "soft": soft, "hard": hard}
        return self.broadcast("time_limit", arguments, destination, reply, timeout)

    def shutdown(
        self, destination: Destination = None, reply: bool = False, timeout: float = 1.0
    ) -> Replies:
        """Stop the workers warm (as SIGTERM does: running tasks finish).

        Raises:
            PublishError: the command could not be stored in the broker.
        """
        return self.broadcast("shutdown", None, destination, reply, timeout)

    def pool_grow(
        self, n: int = 1, destination: Destination = None, reply: bool = False, timeout: float = 1.0
    ) -> Replies:
        """Add ``n`` processes (or threads) to each worker's pool.

        Raises:
            PublishError: the command could not be stored in the broker.
        """
        return self.broadcast("pool_grow", {"n": n}, destination, reply, timeout)

    def pool_shrink(
        self, n: int = 1, destination: Destination = None, reply: bool = False, timeout: float = 1.0
    ) -> Replies:
        """Remove up to ``n`` idle processes (or threads) from each worker's pool.

        Raises:
            PublishError: the command could not be stored in the broker.
        """
        return self.broadcast("pool_shrink", {"n": n}, destination, reply, timeout)

    def add_consumer(
        self,
        queue: str,
        destination: Destination = None,
        reply: bool = False,
        timeout: float = 1.0,
        **options: Any,
    ) -> Replies:
        """Make the workers fetch from ``queue`` too (Celery's other options are accepted and
        not used: a celeriac queue needs no declaring).

        Raises:
            PublishError: the command could not be stored in the broker.
        """
        return self.broadcast("add_consumer", {"queue": queue}, destination, reply, timeout)

    def cancel_consumer(
        self,
        queue: str,
        destination: Destination = None,
        reply: bool = False,
        timeout: float = 1.0,
        **options: Any,
    ) -> Replies:
        """Make the workers stop fetching from ``queue``.

        Raises:
            PublishError: the command could not be stored in the broker.
        """
        return self.broadcast("cancel_consumer", {"queue": queue}, destination, reply, timeout)

    def purge(self) -> int:
        """Delete every waiting message of the app's queues (``task_queues``, else the default
        queue); return how many went. Messages under a live lease stay.

        Raises:
            BrokerError: the broker cannot be reached.
        """
        conf = self.app.conf
        queues = queue_names(conf.task_queues) or [conf.task_default_queue]
        return self.app.broker.purge(queues)
