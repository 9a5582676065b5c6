"""The scheduler: sends each fire of each entry exactly once, from any number of beats.

There is no leader. Every beat tries every fire, and each fire goes through
``broker.publish_once(message, key=f"beat:{name}:{due}")``: the broker enqueues the first and
refuses the rest, atomically. So two beats send each fire once, and when one dies the others
simply go on; nothing fails over. Fire times come from the schedule alone (see
``celeriac.schedules``), so every beat computes the same due times and keys.

``Scheduler.tick()`` does one pass on the clock it was given and returns how long to wait, so
tests drive it without sleeping; ``Beat`` is the loop around it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from types import FrameType

from celeriac.app import Celeriac
from celeriac.beat.entries import RUN_ONCE, Entry, code_entries, fire_message
from celeriac.beat.store import EntryState, PauseState, ScheduleStore, fire_key
from celeriac.exceptions import CeleriacError, ConfigurationError
from celeriac.schedules import UTC, timezone

log = logging.getLogger("celeriac.beat")
Clock = Callable[[], float]
MAX_FIRES_PER_TICK = 10_000  # a guard against a sub-second interval far behind
MIN_ONCE_TTL = 3600.0  # seconds a fire's key is kept: far longer than any beat lags
# Seconds between tries while the store is unreachable (at start, too): capped as the worker's
# fetches are, so beat sends again within about 2 s of the store coming back.
MIN_RETRY, MAX_RETRY = 0.5, 2.0
_FIRE_IDS = uuid.UUID("6f0a3b52-3c1e-4f43-9d59-2f1c4be0a7d1")  # namespace of fire task ids


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, UTC)


@dataclass
class _Slot:
    """One entry as this beat follows it: fires up to ``position`` are dealt with."""

    entry: Entry
    position: float
    next_due: dt.datetime | None


class Scheduler:
    """Sends the app's due fires; see the module docstring.

    ``clock`` gives epoch seconds (default: the broker's clock, the one that decides when
    messages are handed out).

    Raises:
        ConfigurationError: a bad ``beat_schedule`` entry, time zone or beat setting.
    """

    def __init__(
        self, app: Celeriac, *, clock: Clock | None = None, max_interval: float | None = None
    ) -> None:
        conf = app.conf
        self.app = app
        self.clock = clock or app.broker.clock
        self.tz = timezone(conf.timezone)
        self.max_interval = float(max_interval or conf.seconds("beat_max_loop_interval") or 5.0)
        self.missed_after = conf.seconds("beat_missed_after") or 0.0
        if self.max_interval <= 0 or self.missed_after < 0:
            raise ConfigurationError("beat_max_loop_interval and beat_missed_after must be > 0")
        self.once_ttl = max(MIN_ONCE_TTL, 2 * self.missed_after)
        self.store = ScheduleStore(app.backend)
        self.code = code_entries(app)
        self.slots: dict[str, _Slot] = {}
        self._refreshed_at: float | None = None

    # -- one pass --------------------------------------------------------------------------------
    def tick(self) -> float:
        """Send every fire due by now; return the seconds until the next one (or the next look
        at the stored schedule, whichever is sooner).

        Raises:
            BrokerError: the broker could not be reached (nothing is lost: the next tick
                tries the same fires again).
            BackendError: the backend could not be reached (likewise).
        """
        now = self.clock()
        if self._refreshed_at is None or now - self._refreshed_at >= self.max_interval:
            self.refresh(now)
        for slot in list(self.slots.values()):
            self._advance(slot, now)
        return self._delay(self.clock())

    def refresh(self, now: float) -> None:
        """Read entries added, changed or removed at run time.

        Raises:
            BackendError: the backend could not be reached.
        """
        entries = dict(self.code)
        for name, document in self.store.runtime_documents().items():
            if name in self.code:
                log.warning("run-time entry %r is shadowed by the app's own entry", name)
                continue
            try:
                entries[name] = Entry.from_document(name, document)
            except ConfigurationError as exc:
                log.error("%s", exc)
        for name in set(self.slots) - set(entries):
            log.info("entry %r removed", name)
            del self.slots[name]
        for name, entry in entries.items():
            slot = self.slots.get(name)
            if slot is None or slot.entry != entry:
                self.slots[name] = self._new_slot(entry, now)
        self._refreshed_at = now

    def _new_slot(self, entry: Entry, now: float) -> _Slot:
        state = self.store.state(entry.name)
        marks = [m for m in (state.last_run, state.checked_until) if m is not None]
        # Never fired: start from now. Fired before: from there, so missed fires are seen.
        position = max(marks) if marks else now
        return _Slot(entry, position, entry.schedule.next_after(_utc(position), self.tz))

    def _delay(self, now: float) -> float:
        assert self._refreshed_at is not None
        waits = [self._refreshed_at + self.max_interval - now]
        waits += [s.next_due.timestamp() - now for s in self.slots.values() if s.next_due]
        return max(0.0, min(waits))

    # -- fires -------------------------------------------------------------------------------------
    def _advance(self, slot: _Slot, now: float) -> None:
        if slot.next_due is None or slot.next_due.timestamp() > now:
            return
        pause = self.store.pause_state(slot.entry.name)
        if slot.next_due.timestamp() < now - self.missed_after:
            self._catch_up(slot, now, pause)
        schedule = slot.entry.schedule
        for _ in range(MAX_FIRES_PER_TICK):
            due = slot.next_due
            if due is None or due.timestamp() > now:
                break
            following = schedule.next_after(due, self.tz)
            if not pause.paused:
                self._fire(slot.entry, due, following)
            slot.position, slot.next_due = due.timestamp(), following

    def _catch_up(self, slot: _Slot, now: float, pause: PauseState) -> None:
        """Deal with fires more than ``beat_missed_after`` late, by the entry's policy."""
        entry, limit = slot.entry, now - self.missed_after
        state = self.store.state(entry.name)
        marks = [slot.position, state.last_run, state.checked_until]
        if not pause.paused:
            marks.append(pause.since)  # fires while it was paused were not missed
        known = max(m for m in marks if m is not None)
        if known < limit:
            latest = entry.schedule.last_between(_utc(known), _utc(limit), self.tz)
            if latest is not None and not pause.paused:
                if entry.missed == RUN_ONCE:
                    log.warning("%s: fires missed since %s; sending the last", entry.name, latest)
                    self._fire(entry, latest, entry.schedule.next_after(latest, self.tz))
                else:
                    log.warning("%s: skipping fires missed up to %s", entry.name, latest)
                    self.store.save_state(entry.name, replace(state, checked_until=limit))
            known = limit
        slot.position = known
        slot.next_due = entry.schedule.next_after(_utc(known), self.tz)

    def _fire(self, entry: Entry, due: dt.datetime, following: dt.datetime | None) -> None:
        due = due.astimezone(UTC)
        key = fire_key(entry.name, due.isoformat())
        try:
            message = fire_message(self.app, entry, due, str(uuid.uuid5(_FIRE_IDS, key)))
        except (ConfigurationError, TypeError, ValueError) as exc:
            log.error("%s: cannot build the fire due %s: %s", entry.name, due, exc)
            return
        except CeleriacError as exc:  # over message_max_bytes, say: this entry only
            log.error("%s: cannot send the fire due %s: %s", entry.name, due, exc)
            return
        if message.expires is not None and message.expires <= self.clock():
            log.warning("%s: the fire due %s expired before it was sent", entry.name, due)
            return
        if not self.app.sender.publish_once(message, key, ttl=self.once_ttl):
            log.debug("%s due %s: already sent by another beat", entry.name, due)
            return
        log.info("sent %s [%s] due %s", entry.name, message.id, due.astimezone(self.tz))
        self.store.save_state(
            entry.name,
            EntryState(
                last_run=due.timestamp(),
                next_run=following.timestamp() if following else None,
                checked_until=due.timestamp(),
            ),
        )


# -- the loop ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BeatOptions:
    """How to run beat; the CLI's ``beat`` flags."""

    max_interval: float | None = None
    install_signal_handlers: bool = True


class Beat:
    """The beat loop for ``app``: sends ``on_after_configure`` (through ``app.finalize()``),
    reads the schedule, then ticks until ``stop()`` or SIGTERM / SIGINT.

    Raises:
        ConfigurationError: a bad schedule entry, time zone or beat setting.
    """

    def __init__(
        self, app: Celeriac, options: BeatOptions | None = None, *, clock: Clock | None = None
    ) -> None:
        self.app = app
        self.options = options or BeatOptions()
        app.finalize()
        self.scheduler = Scheduler(app, clock=clock, max_interval=self.options.max_interval)
        self._stopping = threading.Event()

    def run(self) -> None:
        """Send fires until stopped. A store that cannot be reached is tried again with backoff;
        fires that come due meanwhile are sent when it is back (or handled as missed)."""
        if self.options.install_signal_handlers:
            self._install_signal_handlers()
        scheduler, retry = self.scheduler, MIN_RETRY
        log.info(
            "beat ready: %d entries in code, time zone %s, broker %s, look every %.1fs",
            len(scheduler.code),
            scheduler.tz.key,
            self.app.broker.url,
            scheduler.max_interval,
        )
        self.app.middleware.beat_start(self)
        try:
            while not self._stopping.is_set():
                try:
                    delay, retry = scheduler.tick(), MIN_RETRY
                except Exception as exc:  # any store error: beat must outlive outages
                    log.error(
                        "beat tick failed (retrying in %.1fs): %s",
                        retry,
                        exc,
                        exc_info=not isinstance(exc, CeleriacError),  # a bug: show where
                    )
                    delay, retry = retry, min(retry * 2, MAX_RETRY)
                self._stopping.wait(delay)
        finally:
            log.info("beat stopped")
            self.app.close()

    def stop(self) -> None:
        """Ask the loop to end after the current tick."""
        self._stopping.set()

    def _install_signal_handlers(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)


def run_beat(app: Celeriac, options: BeatOptions | None = None) -> None:
    """Run beat for ``app`` in this thread until SIGTERM or SIGINT.

    Raises:
        ConfigurationError: a bad schedule entry, time zone or beat setting.
    """
    Beat(app, options).run()


@contextlib.contextmanager
def embedded_beat(app: Celeriac, options: BeatOptions | None = None) -> Iterator[Beat]:
    """Run beat in a thread of this process while the block runs (``worker -B``).

    The schedule is read before the block starts, so a bad entry fails here, not in the thread.

    Raises:
        ConfigurationError: a bad schedule entry, time zone or beat setting.
    """
    beat = Beat(app, replace(options or BeatOptions(), install_signal_handlers=False))
    thread = threading.Thread(target=beat.run, name="celeriac-beat", daemon=True)
    thread.start()
    try:
        yield beat
    finally:
        beat.stop()
        thread.join(timeout=10)
