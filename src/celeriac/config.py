"""The app's settings: Celery's lowercase names, checked when they are set.

A misspelt setting would otherwise be ignored in silence, so an unknown name raises an error that
names it (and the nearest known name). Durations may be given as seconds or ``timedelta``.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import importlib
import inspect
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from celeriac.exceptions import ConfigurationError

DEFAULT_BROKER_URL = "sqlite:///celeriac.db"
ENV_BROKER_URL = "CELERIAC_BROKER_URL"
ENV_RESULT_BACKEND = "CELERIAC_RESULT_BACKEND"

DEFAULTS: dict[str, Any] = {
    # where messages and results live
    "broker_url": None,  # None: $CELERIAC_BROKER_URL, else the SQLite file ./celeriac.db
    "result_backend": None,  # None: $CELERIAC_RESULT_BACKEND, else the broker's own store
    "broker_transport_options": {},  # lease_seconds (alias visibility_timeout), ...
    "broker_publish_timeout": 10.0,
    "result_expires": 86400.0,
    # what a task call becomes
    "task_routes": None,
    "task_default_queue": "celery",
    "task_default_priority": 0,
    "task_create_missing_queues": True,
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "security_key": None,
    "message_max_bytes": 10 * 1024 * 1024,
    # how tasks run
    "task_acks_late": True,
    "task_time_limit": None,
    "task_soft_time_limit": None,
    "task_ignore_result": False,
    "task_track_started": False,
    "task_max_deliveries": 5,
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
    "worker_direct": False,  # also consume the queue '<node name>.dq', to be sent to by name
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


class Settings(MutableMapping[str, Any]):
    """Settings readable as ``conf.name`` and ``conf['name']``; unknown names are errors."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        # A deep copy: `conf.beat_schedule[name] = ...` must not change every other app.
        object.__setattr__(self, "_values", copy.deepcopy(DEFAULTS))
        # Bumped by every change, so that values derived from settings can be cached safely.
        object.__setattr__(self, "version", 0)
        if values:
            self.update(values)

    @staticmethod
    def check_name(name: str) -> None:
        """Raise unless ``name`` is a known setting.

        Raises:
            ConfigurationError: naming the unknown setting and the nearest known one.
        """
        if name in DEFAULTS:
            return
        near = difflib.get_close_matches(name, DEFAULTS, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigurationError(f"unknown setting {name!r}{hint}")

    def __getitem__(self, name: str) -> Any:
        self.check_name(name)
        return self._values[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.check_name(name)
        self._values[name] = value
        object.__setattr__(self, "version", self.version + 1)

    def __delitem__(self, name: str) -> None:
        self.check_name(name)
        self._values[name] = copy.deepcopy(DEFAULTS[name])
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
        """The broker URL: the setting, else ``$CELERIAC_BROKER_URL``, else ``./celeriac.db``."""
        return str(self["broker_url"] or os.environ.get(ENV_BROKER_URL) or DEFAULT_BROKER_URL)

    def result_backend_or_default(self) -> str | None:
        """The backend URL: the setting, else ``$CELERIAC_RESULT_BACKEND``, else None (broker's)."""
        url = self["result_backend"] or os.environ.get(ENV_RESULT_BACKEND)
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

        With ``namespace='CELERY'``, reads ``CELERY_BROKER_URL`` style names (as Django projects
        write them); otherwise reads the object's lowercase public attributes.

        Raises:
            ConfigurationError: the module cannot be imported, has no such attribute, or a
                setting is unknown.
        """
        if isinstance(obj, str):
            obj = _import_object(obj)
        for key in dir(obj):
            name = _setting_name(key, namespace)
            value = getattr(obj, key)
            if (
                name is None
                or inspect.ismodule(value)
                or (callable(value) and name != "task_routes")
            ):
                continue
            self[name] = value


def _import_object(path: str) -> object:
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


def _setting_name(key: str, namespace: str | None) -> str | None:
    if namespace:
        prefix = namespace.rstrip("_") + "_"
        return key[len(prefix) :].lower() if key.startswith(prefix) else None
    if key.startswith("_") or key != key.lower():
        return None
    return key


def to_seconds(value: Any, what: str) -> float | None:
    """Seconds from a number or ``timedelta`` (None stays None).

    Raises:
        ConfigurationError: ``value`` is neither.
    """
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ConfigurationError(f"{what} must be seconds or a timedelta, not {value!r}")
