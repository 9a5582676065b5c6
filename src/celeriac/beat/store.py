"""Where the schedule's state lives: documents and one set in the result backend.

No local file, so any beat on any machine sees the same state, and a beat that starts after
another died picks up where it stopped. Every key beat uses is named here:

| key | kind | holds | written by |
| --- | --- | --- | --- |
| ``beat:state:<name>`` | document | ``last_run``, ``next_run``, ``checked_until`` (epoch s) | the beat that sent a fire, or skipped missed ones |
| ``beat:paused:<name>`` | document | ``paused`` and ``since`` (epoch s) | ``ScheduleControl.pause`` / ``resume`` |
| ``beat:entry:<name>`` | document | an entry added at run time (``Entry.to_document``), or ``removed`` | ``ScheduleControl.add`` / ``remove`` |
| ``beat:entries`` | set | the names of entries ever added at run time | ``ScheduleControl.add`` |

Each document has one kind of writer, so a pause can never be overwritten by a beat recording a
fire. The fire claims themselves (``beat:<name>:<due>``) are ``publish_once`` keys in the broker.
"""  # noqa: E501 - a table reads better unwrapped

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celeriac.backends.base import ResultBackend

RUNTIME_NAMES = "beat:entries"


def _state_key(name: str) -> str:
    return f"beat:state:{name}"


def _pause_key(name: str) -> str:
    return f"beat:paused:{name}"


def _entry_key(name: str) -> str:
    return f"beat:entry:{name}"


def fire_key(name: str, due_iso: str) -> str:
    """The ``publish_once`` key of one fire: entry name and due time (UTC, ISO 8601)."""
    return f"beat:{name}:{due_iso}"


@dataclass(frozen=True)
class EntryState:
    """What beat last did for an entry (epoch seconds; None: never).

    ``checked_until`` is how far the entry's fires have been dealt with, sent or skipped.
    """

    last_run: float | None = None
    next_run: float | None = None
    checked_until: float | None = None


@dataclass(frozen=True)
class PauseState:
    """Whether an entry is paused, and since when it is paused (or running again)."""

    paused: bool = False
    since: float | None = None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


class ScheduleStore:
    """Reads and writes the keys in the module docstring.

    Calls raise ``BackendError`` when the backend cannot be reached.
    """

    def __init__(self, backend: ResultBackend) -> None:
        self.backend = backend

    def state(self, name: str) -> EntryState:
        """The stored state of ``name`` (empty if beat never fired it)."""
        document = self.backend.get_document(_state_key(name)) or {}
        return EntryState(
            last_run=_number(document.get("last_run")),
            next_run=_number(document.get("next_run")),
            checked_until=_number(document.get("checked_until")),
        )

    def save_state(self, name: str, state: EntryState) -> None:
        """Replace the stored state of ``name``."""
        self.backend.put_document(_state_key(name), state.__dict__, expires=None)

    def pause_state(self, name: str) -> PauseState:
        """Whether ``name`` is paused."""
        document = self.backend.get_document(_pause_key(name)) or {}
        return PauseState(bool(document.get("paused")), _number(document.get("since")))

    def set_paused(self, name: str, paused: bool, at: float) -> None:
        """Pause or resume ``name`` as of ``at``."""
        self.backend.put_document(_pause_key(name), {"paused": paused, "since": at}, expires=None)

    def runtime_documents(self) -> dict[str, dict[str, Any]]:
        """The entries added at run time and not removed, by name."""
        found = {}
        for name in sorted(self.backend.set_members(RUNTIME_NAMES)):
            document = self.backend.get_document(_entry_key(name))
            if document and not document.get("removed"):
                found[name] = document
        return found

    def put_runtime(self, name: str, document: dict[str, Any]) -> None:
        """Store a run-time entry (replacing one of that name)."""
        self.backend.put_document(_entry_key(name), document, expires=None)
        self.backend.add_to_set(RUNTIME_NAMES, name, expires=None)

    def remove_runtime(self, name: str) -> None:
        """Mark a run-time entry removed (the backend has no delete for documents)."""
        self.backend.put_document(_entry_key(name), {"removed": True}, expires=None)
