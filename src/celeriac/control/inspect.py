"""``Inspect``: what the workers hold and know (``app.control.inspect().active()`` ...).

Each method broadcasts one question and gathers the answers until the timeout (or until every
worker named in ``destination`` answered). It returns Celery's shape: ``{hostname: answer}``,
or None when no worker answered. What each answer holds is in ``docs/design/control.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.control.remote import Control


class Inspect:
    """Asks the workers named in ``destination`` (else all) about their state."""

    def __init__(
        self,
        control: Control,
        *,
        destination: list[str] | None = None,
        timeout: float = 1.0,
        limit: int | None = None,
    ) -> None:
        self.control = control
        self.destination = destination
        self.timeout = timeout
        self.limit = limit

    def _request(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        replies = self.control.broadcast(
            command,
            arguments or None,
            destination=self.destination,
            reply=True,
            timeout=self.timeout,
            limit=self.limit,
        )
        merged = {host: answer for reply in replies or [] for host, answer in reply.items()}
        return merged or None

    def active(self, safe: bool | None = None) -> dict[str, Any] | None:
        """The tasks each worker is running: ``{hostname: [request, ...]}``."""
        return self._request("active")

    def reserved(self, safe: bool | None = None) -> dict[str, Any] | None:
        """The tasks each worker holds and has not started (waiting for a process or for a
        rate limit's token): ``{hostname: [request, ...]}``."""
        return self._request("reserved")

    def scheduled(self, safe: bool | None = None) -> dict[str, Any] | None:
        """The tasks with an ETA each worker holds: ``{hostname: []}`` (a celeriac worker
        never holds one: a delayed message waits in the broker until its ETA)."""
        return self._request("scheduled")

    def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        """The task names each worker knows, with the named attributes (``'rate_limit'``,
        ``'time_limit'`` ...) as Celery shows them: ``'tasks.add [rate_limit=10/s]'``."""
        return self._request("registered", taskinfoitems=list(taskinfoitems) or None)

    registered_tasks = registered

    def stats(self) -> dict[str, Any] | None:
        """Each worker's statistics: pid, pool, total tasks by name, uptime, broker, rusage."""
        return self._request("stats")

    def revoked(self) -> dict[str, Any] | None:
        """The revoked task ids each worker remembers."""
        return self._request("revoked")

    def active_queues(self) -> dict[str, Any] | None:
        """The queues each worker fetches from."""
        return self._request("active_queues")

    def ping(self) -> dict[str, Any] | None:
        """``{hostname: {'ok': 'pong'}}`` for each worker that answered."""
        return self._request("ping")
