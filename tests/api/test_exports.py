"""``celeriac.__all__`` is the public API: pinned here, so a change to it is a deliberate one."""

from __future__ import annotations

import builtins
import importlib

import pytest

import celeriac

EXPECTED = [
    "AsyncResult",
    "Celeriac",
    "CeleriacError",
    "Celery",
    "ChordError",
    "ConfigurationError",
    "DagRun",
    "EagerResult",
    "Exchange",
    "GroupResult",
    "Ignore",
    "ImproperlyConfigured",
    "MaxRetriesExceededError",
    "NotRegistered",
    "PublishError",
    "Queue",
    "Reject",
    "Request",
    "ResultSet",
    "Retry",
    "Signature",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskError",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLostError",
    "__version__",
    "chain",
    "chord",
    "chunks",
    "clocked",
    "crontab",
    "current_app",
    "current_task",
    "dag",
    "group",
    "schedule",
    "shared_task",
    "signature",
    "states",
    "xmap",
    "xstarmap",
]


def test_all_is_pinned() -> None:
    assert celeriac.__all__ == EXPECTED
    assert sorted(EXPECTED) == EXPECTED
    assert len(set(celeriac.__all__)) == len(celeriac.__all__)


@pytest.mark.parametrize("name", EXPECTED)
def test_every_exported_name_is_importable(name: str) -> None:
    module = importlib.import_module("celeriac")
    assert getattr(module, name) is not None
    namespace: dict[str, object] = {}
    exec(f"from celeriac import {name}", namespace)
    assert namespace[name] is getattr(celeriac, name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from celeriac import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(EXPECTED)


def test_exceptions_share_one_root() -> None:
    errors = [
        getattr(celeriac, n)
        for n in EXPECTED
        if isinstance(getattr(celeriac, n), type) and n.endswith(("Error", "Exceeded"))
    ]
    errors += [celeriac.Ignore, celeriac.Reject, celeriac.Retry, celeriac.ImproperlyConfigured]
    assert all(issubclass(e, celeriac.CeleriacError) for e in errors)
    assert celeriac.ImproperlyConfigured is celeriac.ConfigurationError
    assert issubclass(celeriac.TimeoutError, builtins.TimeoutError)
    assert issubclass(celeriac.NotRegistered, KeyError)


def test_aliases_and_version() -> None:
    assert celeriac.Celery is celeriac.Celeriac
    assert isinstance(celeriac.__version__, str)
    assert celeriac.__version__.count(".") == 2
    assert celeriac.states.SUCCESS == "SUCCESS"
