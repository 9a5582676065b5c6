"""Changing the schedule while beat runs: list, add, pause, resume, remove, run now.

Every change is a write to the backend (see ``celeriac.beat.store``), so it reaches every beat
on every machine: a pause or resume at the next fire, an added or removed entry within
``beat_max_loop_interval``. ``celeriac -A proj schedule ...`` is this class on the command line.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celeriac.app import Celeriac
from celeriac.beat.entries import Entry, code_entries, fire_message, parse_entry
from celeriac.beat.store import ScheduleStore
from celeriac.exceptions import ConfigurationError
from celeriac.schedules import UTC, timezone


@dataclass(frozen=True)
class EntryStatus:
    """One entry as ``schedule list`` shows it; times are in the app's time zone."""

    name: str
    schedule: str
    target: str
    paused: bool
    last_run: dt.datetime | None
    next_run: dt.datetime | None
    runtime: bool


class ScheduleControl:
    """The schedule of ``app``, as stored in its backend; see the module docstring.

    Creating it sends ``on_after_configure`` (through ``app.finalize()``), so entries that a
    project adds there are seen too.
    """

    def __init__(self, app: Celeriac) -> None:
        app.finalize()
        self.app = app
        self.store = ScheduleStore(app.backend)

    def _entries(self) -> dict[str, Entry]:
        entries = code_entries(self.app)
        for name, document in self.store.runtime_documents().items():
            entries.setdefault(name, Entry.from_document(name, document))
        return entries

    def entry(self, name: str) -> Entry:
        """The entry called ``name``.

        Raises:
            ConfigurationError: there is none.
        """
        try:
            return self._entries()[name]
        except KeyError:
            raise ConfigurationError(f"no schedule entry named {name!r}") from None

    def entries(self) -> list[EntryStatus]:
        """Every entry with its state, sorted by name.

        Raises:
            BackendError: the backend could not be reached.
        """
        tz, now = timezone(self.app.conf.timezone), _utc(self.app.broker.clock())
        statuses = []
        for name, entry in sorted(self._entries().items()):
            state = self.store.state(name)
            last = _utc(state.last_run) if state.last_run is not None else None
            statuses.append(
                EntryStatus(
                    name=name,
                    schedule=str(entry.schedule),
                    target=entry.describe(),
                    paused=self.store.pause_state(name).paused,
                    last_run=last.astimezone(tz) if last else None,
                    next_run=entry.schedule.next_after(max(now, last or now), tz),
                    runtime=entry.runtime,
                )
            )
        return statuses

    def add(
        self,
        name: str,
        schedule: Any,
        sig: Any,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Entry:
        """Add (or replace) a run-time entry, as ``add_periodic_task`` takes it; every beat
        picks it up within ``beat_max_loop_interval``.

        Raises:
            ConfigurationError: a bad entry, one that is not JSON, or the name of an entry the
                app's code defines.
        """
        if name in code_entries(self.app):
            raise ConfigurationError(f"{name!r} is defined in the app's code: change it there")
        spec: dict[str, Any] = {"schedule": schedule, "task": sig, "args": args, "kwargs": kwargs}
        for key in ("relative", "missed"):
            if key in options:
                spec[key] = options.pop(key)
        spec["options"] = options
        default = self.app.conf.beat_missed_policy
        entry = parse_entry(name, spec, default_missed=default, runtime=True)
        self.store.put_runtime(name, entry.to_document())
        return entry

    def remove(self, name: str) -> None:
        """Remove a run-time entry.

        Raises:
            ConfigurationError: no such entry, or one the app's code defines (pause it, or
                change the code).
        """
        if not self.entry(name).runtime:
            raise ConfigurationError(
                f"{name!r} is defined in the app's code: remove it there, or pause it"
            )
        self.store.remove_runtime(name)

    def pause(self, name: str) -> None:
        """Stop sending the fires of ``name`` until :meth:`resume`.

        Raises:
            ConfigurationError: no such entry.
        """
        self.entry(name)
        self.store.set_paused(name, True, self.app.broker.clock())

    def resume(self, name: str) -> None:
        """Send the fires of ``name`` again, from the next one; fires due while it was paused
        are not sent.

        Raises:
            ConfigurationError: no such entry.
        """
        self.entry(name)
        self.store.set_paused(name, False, self.app.broker.clock())

    def run(self, name: str) -> str:
        """Send one fire of ``name`` now (paused or not), outside its schedule; returns its
        task id.

        Raises:
            ConfigurationError: no such entry.
            PublishError: the message was not enqueued.
        """
        entry = self.entry(name)
        message = fire_message(self.app, entry, _utc(self.app.broker.clock()), str(uuid.uuid4()))
        self.app.sender.publish([message])
        return message.id


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, UTC)
