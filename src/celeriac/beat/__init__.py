"""Periodic tasks: the beat scheduler, and the control of its schedule at run time.

Run it with ``celeriac -A proj beat`` (as many as you like: each fire is sent once), or inside
a worker with ``celeriac -A proj worker -B``. How it works: docs/design/beat.md.
"""

from celeriac.beat.entries import MISSED_POLICIES, Entry, parse_entry
from celeriac.beat.schedule_control import EntryStatus, ScheduleControl
from celeriac.beat.scheduler import Beat, BeatOptions, Scheduler, embedded_beat, run_beat

__all__ = [
    "MISSED_POLICIES",
    "Beat",
    "BeatOptions",
    "Entry",
    "EntryStatus",
    "ScheduleControl",
    "Scheduler",
    "embedded_beat",
    "parse_entry",
    "run_beat",
]
