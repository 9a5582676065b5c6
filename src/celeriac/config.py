"""The app's settings: Celery's lowercase names, checked when they are set.

A misspelt setting would otherwise be ignored in silence, so an unknown name raises an error that
names it (and the nearest known name). Every other name Celery knows is accepted
(``celery_settings.TABLE``): an old upper-case name (``BROKER_URL``, ``CELERYD_CONCURRENCY``) is
an alias of its new name, and a setting that celeriac does not use is kept, readable, and named
once at worker and beat start-up (``Settings.log_notes``), with what celeriac does instead.
Durations may be given as seconds or ``timedelta``.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import importlib
import inspect
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, NamedTuple

from celeriac.celery_settings import BY_NAME, BY_OLD_NAME, GUIDE, Note, setting_notes
from celeriac.exceptions import ConfigurationError
from celeriac.urls import mask_url

log = logging.getLogger("celeriac.config")

DEFAULT_BROKER_URL = "sqlite:///celeriac.db"
ENV_BROKER_URL = "CELERIAC_BROKER_URL"
ENV_RESULT_BACKEND = "CELERIAC_RESULT_BACKEND"
# Celery's variables, read after celeriac's: a setting, then $CELERIAC_..., then $CELERY_...
CELERY_ENV_BROKER_URL = "CELERY_BROKER_URL"
CELERY_ENV_RESULT_BACKEND = "CELERY_RESULT_BACKEND"
CELERY_ENV_NOT_YET = ("CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL")

DEFAULTS: dict[str, Any] = {
    # where messages and results live
    "broker_url": None,  # None: $CELERIAC_BROKER_URL, $CELERY_BROKER_URL, else ./celeriac.db
    "result_backend": None,  # None: $CELERIAC_ or $CELERY_RESULT_BACKEND, else the broker's
    "broker_transport_options": {},  # lease_seconds (alias visibility_timeout), ...
    "broker_publish_timeout": 10.0,
    "result_expires": 86400.0,
    # what a task call becomes
    "task_routes": None,
    "task_annotations": None,
    "task_queues": None,  # Queue objects (celeriac.queues); a route may name one by routing_key
    "task_default_queue": "celeriac",
    "task_default_priority": 0,
    "task_create_missing_queues": True,
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "security_key": None,
    "message_max_bytes": 10 * 1024 * 1024,
    "task_compression": None,  # 'zlib', 'gzip', 'bzip2', 'lzma' (celeriac.compression)
    "result_compression": None,
    "task_publish_retry": True,  # False: a publish fails at the broker's first error
    "task_publish_retry_policy": None,  # None: retry with backoff for broker_publish_timeout
    # how tasks run
    "task_acks_late": True,
    "task_time_limit": None,
    "task_soft_time_limit": None,
    "task_ignore_result": False,
    "task_track_started": False,
    # task history and events (docs/design/monitoring.md)
    "task_history": True,  # False: workers record no task events (nor the history)
    "task_history_expires": 7 * 86400.0,  # seconds an entry of the history is kept
    "task_send_sent_event": False,  # True: the client records task-sent as it publishes
    "dashboard_hide_args": False,  # True: the history keeps no args or kwargs
    "task_max_deliveries": 5,
    "task_default_rate_limit": None,  # a task's rate_limit when it has none: '10/s', '100/m'
    "task_always_eager": False,
    "task_eager_propagates": False,
    "task_store_eager_result": False,
    "timezone": "UTC",
    "enable_utc": True,
    # workers
    "worker_concurrency": None,  # None: the number of CPUs
    "worker_prefetch_multiplier": 1,
    "worker_max_tasks_per_child": None,
    "worker_max_memory_per_child": None,  # KiB, as in Celery
    "worker_shutdown_timeout": 30.0,
    "worker_disable_rate_limits": False,  # True: every task's rate_limit is ignored here
    "worker_direct": False,
    # The defaults of worker --logfile, --pidfile, --uid, --gid, --umask, --executable.
    "worker_logfile": None,
    "worker_pidfile": None,
    "worker_uid": None,
    "worker_gid": None,
    "worker_umask": None,
    "worker_executable": None,  # also consume the queue '<node name>.dq', to be sent to by name
    # periodic tasks (beat); see docs/design/beat.md
    "beat_schedule": {},
    "beat_max_loop_interval": 5.0,  # seconds between looks at the stored schedule, at most
    "beat_missed_after": 30.0,  # seconds late past which a fire counts as missed
    "beat_missed_policy": "skip",  # for entries without their own 'missed': or 'run_once'
    # modules that hold tasks
    "include": [],
    "imports": [],
    # middleware after the built-in ones: instances, classes or dotted class paths
    "middleware": [],
}

DEFAULT_LEASE_SECONDS = 30.0

# Every name a setting may be given by: celeriac's, and the other names Celery knows.
KNOWN = frozenset(DEFAULTS) | frozenset(BY_NAME)
# Settings whose value may be a function or a class; other callables in a config object are the
# helpers and imports that config modules hold, and are skipped (`from datetime import timezone`).
CALLABLE_SETTINGS = frozenset(
    {"task_routes", "broker_failover_strategy", "database_engine_callback"}
)

_LOGGED: set[str] = set()  # the keys of the notes this process has logged


def canonical_name(name: str) -> str:
    """The name a setting is kept under: ``name`` itself, or the new name of an old one.

    Raises:
        ConfigurationError: an unknown name (with the nearest known one).
    """
    if name in KNOWN:
        return name
    row = BY_OLD_NAME.get(name)
    if row is not None:
        return row.name
    raise _unknown(name, BY_OLD_NAME if name.isupper() else KNOWN)


def _unknown(name: str, candidates: Iterable[str], prefix: str = "") -> ConfigurationError:
    """The error for an unknown setting, naming the nearest known one as ``name`` spells names
    (with ``prefix``, a Django-style ``CELERY_...`` name)."""
    wanted = name[len(prefix) :].lower() if prefix else name
    near = difflib.get_close_matches(wanted, list(candidates), n=1)
    nearest = (prefix + near[0].upper() if prefix else near[0]) if near else ""
    hint = f" (did you mean {nearest!r}?)" if nearest else ""
    return ConfigurationError(f"unknown setting {name!r}{hint}")


class Settings(MutableMapping[str, Any]):
    """Settings readable as ``conf.name`` and ``conf['name']``; unknown names are errors.

    Old upper-case names read and write their new names. A Celery setting that celeriac does
    not use reads as what was set, else None.
    """

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        # A deep copy: `conf.beat_schedule[name] = ...` must not change every other app.
        object.__setattr__(self, "_values", copy.deepcopy(DEFAULTS))
        # Bumped by every change, so that values derived from settings can be cached safely.
        object.__setattr__(self, "version", 0)
        # Said once at start-up: names of a config object that were ignored, and why.
        object.__setattr__(self, "_loading_notes", {})
        if values:
            self.update(values)

    def __getitem__(self, name: str) -> Any:
        return self._values.get(canonical_name(name))

    def __setitem__(self, name: str, value: Any) -> None:
        self._values[canonical_name(name)] = value
        object.__setattr__(self, "version", self.version + 1)

    def __delitem__(self, name: str) -> None:
        key = canonical_name(name)
        if key in DEFAULTS:
            self._values[key] = copy.deepcopy(DEFAULTS[key])
        else:
            self._values.pop(key, None)
        object.__setattr__(self, "version", self.version + 1)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except ConfigurationError as exc:
            raise AttributeError(str(exc)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def seconds(self, name: str) -> float | None:
        """A duration setting in seconds (None stays None).

        Raises:
            ConfigurationError: the value is not a number of seconds or a ``timedelta``.
        """
        return to_seconds(self[name], name)

    def broker_url_or_default(self) -> str:
        """The broker URL: the setting, else ``$CELERIAC_BROKER_URL``, else
        ``$CELERY_BROKER_URL``, else ``./celeriac.db``."""
        env = os.environ.get(ENV_BROKER_URL) or os.environ.get(CELERY_ENV_BROKER_URL)
        return str(self["broker_url"] or env or DEFAULT_BROKER_URL)

    def result_backend_or_default(self) -> str | None:
        """The backend URL: the setting, else ``$CELERIAC_RESULT_BACKEND``, else
        ``$CELERY_RESULT_BACKEND``, else None (the broker's own store)."""
        env = os.environ.get(ENV_RESULT_BACKEND) or os.environ.get(CELERY_ENV_RESULT_BACKEND)
        url = self["result_backend"] or env
        return str(url) if url else None

    def lease_seconds(self) -> float:
        """How long a fetched message stays leased without a heartbeat.

        Raises:
            ConfigurationError: the lease is not a positive number of seconds.
        """
        options = self["broker_transport_options"] or {}
        value = options.get("lease_seconds", options.get("visibility_timeout"))
        lease = to_seconds(value, "broker_transport_options['lease_seconds']")
        if lease is None:
            return DEFAULT_LEASE_SECONDS
        if lease < 0.5:
            raise ConfigurationError("lease_seconds must be at least 0.5 seconds")
        return lease

    def from_object(self, obj: object | str, namespace: str | None = None) -> None:
        """Load settings from a module, a class, any object, a dotted module path, or
        ``'module:attribute'`` (``'django.conf:settings'``).

        Reads the object's lowercase public attributes and Celery's old upper-case names
        (``BROKER_URL``); with ``namespace='CELERY'``, ``CELERY_BROKER_URL`` style names (as
        Django projects write them) and the old names. Where one setting is given by its new
        and its old name, the new one wins. Django's ``TIME_ZONE`` is the ``timezone`` when
        none is given, as in Celery.

        Raises:
            ConfigurationError: the module cannot be imported, has no such attribute, or a
                setting is unknown.
        """
        if isinstance(obj, str):
            obj = import_object(obj)
        found = _read(obj, namespace, self._loading_notes)
        for name, given in found.items():
            self[name] = given.value
        time_zone = getattr(obj, "TIME_ZONE", None)
        if "timezone" not in found and isinstance(time_zone, str) and self["timezone"] == "UTC":
            self["timezone"] = time_zone
            text = f"timezone is {time_zone!r}, Django's TIME_ZONE, as in Celery"
            self._loading_notes["TIME_ZONE"] = Note("TIME_ZONE", logging.INFO, text)

    # -- the notes said once at start-up -----------------------------------------------------
    def notes(self) -> list[Note]:
        """What celeriac says once about how it reads this configuration: Celery settings it
        does not use (and what it does instead), Celery's variables it does not use, names it
        ignored while loading a config object, and Celery's ``visibility_timeout``."""
        return [
            *setting_notes(self._values),
            *self._environment_notes(),
            *self._lease_notes(),
            *self._loading_notes.values(),
        ]

    def log_notes(self) -> None:
        """Log each note once a process: at INFO what celeriac does not need, at WARNING what it
        does not do yet or does otherwise. Workers and beat call it (through ``app.check()``
        and ``app.finalize()``) when they start."""
        for note in self.notes():
            if note.key not in _LOGGED:
                _LOGGED.add(note.key)
                log.log(note.level, "%s", note.text)

    def _environment_notes(self) -> Iterator[Note]:
        pairs = (
            ("broker_url", ENV_BROKER_URL, CELERY_ENV_BROKER_URL),
            ("result_backend", ENV_RESULT_BACKEND, CELERY_ENV_RESULT_BACKEND),
        )
        for setting, ours, celerys in pairs:
            theirs = os.environ.get(celerys)
            used = self[setting] or os.environ.get(ours)
            if theirs and used and str(used) != theirs:
                source = setting if self[setting] else f"${ours}"
                yield Note(
                    f"${celerys}",
                    logging.WARNING,
                    f"${celerys} is set but not used: {source} ({mask_url(str(used))}) comes "
                    f"first in celeriac, where Celery would use ${celerys} "
                    f'(see "Environment variables" under Settings in {GUIDE})',
                )
        for name in CELERY_ENV_NOT_YET:
            if os.environ.get(name):
                text = f"${name} is not supported yet and has no effect: one broker_url serves both"
                yield Note(f"${name}", logging.WARNING, f"{text} (see {GUIDE})")

    def _lease_notes(self) -> Iterator[Note]:
        options = self["broker_transport_options"] or {}
        if "visibility_timeout" in options and "lease_seconds" not in options:
            given = options["visibility_timeout"]
            yield Note(
                "visibility_timeout",
                logging.INFO,
                f"broker_transport_options['visibility_timeout'] ({given!r}) is taken as the "
                "lease: how long a dead worker's tasks wait to run again. "
                "celeriac renews a lease while its task runs and keeps countdowns in the broker, "
                "so the lease need not outlast long tasks or ETAs (lease_seconds, 30 s by default)",
            )


class _Given(NamedTuple):
    key: str  # the attribute of the config object
    value: Any
    old: bool  # given by Celery's old upper-case name


def _read(obj: object, namespace: str | None, notes: dict[str, Note]) -> dict[str, _Given]:
    """The settings a config object holds, by canonical name; names it ignored go to ``notes``.

    Raises:
        ConfigurationError: an unknown lowercase name (with a namespace: an unknown
            ``NAMESPACE_...`` name).
    """
    prefix = namespace.rstrip("_") + "_" if namespace else ""
    found: dict[str, _Given] = {}
    for key in dir(obj):
        if key.startswith("_"):
            continue
        value = getattr(obj, key)
        if inspect.ismodule(value):
            continue
        hit = _setting_of(key, prefix)
        if hit is None or (callable(value) and hit[0] not in CALLABLE_SETTINGS):
            if not callable(value):
                _check_ignored(key, prefix, notes)
            continue
        name, old = hit
        given = _Given(key, value, old)
        kept = found.setdefault(name, given)
        if kept is not given:
            found[name] = _prefer_new(kept, given, notes)
    return found


def _setting_of(key: str, prefix: str) -> tuple[str, bool] | None:
    """(canonical name, given by its old name) for an attribute of a config object; None when
    the attribute names no setting."""
    if prefix:
        name = key[len(prefix) :].lower() if key.startswith(prefix) else None
        if name in KNOWN:
            return name, False
    elif key == key.lower() and key in KNOWN:
        return key, False
    row = BY_OLD_NAME.get(key)
    return (row.name, True) if row is not None else None


TYPO = 0.8  # how alike a config object's name and a setting's must be for a misspelling


def _check_ignored(key: str, prefix: str, notes: dict[str, Note]) -> None:
    """Raise for an attribute that names no setting but is spelled almost like one (a
    misspelling); note one that names none and is like none (a project's own: Django's
    ``CELERY_ENABLED``, a helper value in a config module), which Celery reads and never uses;
    note one that looks like Celery's but is ignored, as Celery ignores it.

    Raises:
        ConfigurationError: a lowercase attribute (with a namespace: a prefixed one) a letter
            or two from a setting's name.
    """
    if (prefix and key.startswith(prefix)) or (not prefix and key == key.lower()):
        wanted = key[len(prefix) :].lower()
        if difflib.get_close_matches(wanted, KNOWN, n=1, cutoff=TYPO):
            raise _unknown(key, KNOWN, prefix)
        text = f"{key} is ignored: it names no setting of Celery's or celeriac's"
        notes[key] = Note(key, logging.WARNING, text)
        return
    note = _ignored_note(key, prefix)
    if note is not None:
        notes[key] = note


def _ignored_note(key: str, prefix: str) -> Note | None:
    """A Django-style ``CELERY_...`` name read without the namespace, or an upper-case name
    a letter or two away from an old one (``CELERYD_CONCURENCY``): both are ignored."""
    django = key.removeprefix("CELERY_").lower()
    if not prefix and key.startswith("CELERY_") and django in KNOWN:
        text = f"it names {django} only with config_from_object(..., namespace='CELERY')"
        return Note(key, logging.WARNING, f"{key} is ignored, as Celery ignores it: {text}")
    near = difflib.get_close_matches(key, BY_OLD_NAME, n=1, cutoff=0.85)
    if key.startswith(("CELERY", "BROKER_")) and near:
        text = f"{key} is ignored: it names no setting (did you mean {near[0]!r}?)"
        return Note(key, logging.WARNING, text)
    return None


def _prefer_new(first: _Given, second: _Given, notes: dict[str, Note]) -> _Given:
    """Of two attributes naming one setting, the one by its new name; a note when they differ."""
    new, old = (second, first) if first.old else (first, second)
    if new.value != old.value:
        text = f"{old.key} is ignored: {new.key} names the same setting, and the new name wins"
        notes[old.key] = Note(old.key, logging.WARNING, text)
    return new


def import_object(path: str) -> object:
    """The module ``path`` names, or its attribute with ``'module:attribute'``.

    Raises:
        ConfigurationError: the module cannot be imported or has no such attribute.
    """
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import config module {module_name!r}: {exc}") from exc
    if not attribute:
        return module
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(f"config module {module_name!r} has no {attribute!r}") from None


def to_seconds(value: Any, what: str) -> float | None:
    """Seconds from a number or ``timedelta`` (None stays None).

    Raises:
        ConfigurationError: ``value`` is neither, or not finite.
    """
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ConfigurationError(f"{what} must be seconds or a timedelta, not {value!r}")
