"""Configuring the app the ways Celery projects do, and the errors for settings it cannot use."""

from __future__ import annotations

import datetime
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from celeriac import Celeriac, Celery, ConfigurationError, ImproperlyConfigured
from celeriac.testing import in_process_worker


def test_constructor_takes_main_broker_backend_include_and_settings(tmp_path: Path) -> None:
    app = Celery(
        "proj",
        broker="memory://ctor-broker",
        backend="memory://ctor-backend",
        include=["proj.tasks", "proj.more"],
        task_default_queue="work",
        result_expires=60,
    )
    assert app.main == "proj"
    assert app.conf.broker_url == "memory://ctor-broker"
    assert app.conf.result_backend == "memory://ctor-backend"
    assert app.conf.include == ["proj.tasks", "proj.more"]
    assert app.conf.task_default_queue == "work"
    assert app.conf["result_expires"] == 60
    assert app.broker.url == "memory://ctor-broker"
    assert app.backend.url == "memory://ctor-backend"
    assert repr(app) == "<Celeriac proj>"


def test_conf_attribute_and_item_access(app: Celeriac) -> None:
    app.conf.task_default_priority = 3
    assert app.conf["task_default_priority"] == 3
    app.conf["task_default_priority"] = 4
    assert app.conf.task_default_priority == 4
    assert "task_default_priority" in app.conf
    assert app.conf.get("task_serializer") == "json"
    del app.conf["task_default_priority"]
    assert app.conf.task_default_priority == 0


def test_conf_update(app: Celeriac) -> None:
    app.conf.update(task_default_queue="updated", task_acks_late=False)
    app.conf.update({"task_track_started": True})
    assert app.conf.task_default_queue == "updated"
    assert app.conf.task_acks_late is False
    assert app.conf.task_track_started is True


SETTERS: dict[str, Callable[[Celeriac], None]] = {
    "attribute": lambda app: setattr(app.conf, "task_serialiser", "json"),
    "item": lambda app: app.conf.__setitem__("task_serialiser", "json"),
    "update": lambda app: app.conf.update(task_serialiser="json"),
    "update-dict": lambda app: app.conf.update({"task_serialiser": "json"}),
}


@pytest.mark.parametrize("how", sorted(SETTERS))
def test_unknown_setting_is_an_error_with_a_hint(app: Celeriac, how: str) -> None:
    with pytest.raises(ConfigurationError, match="task_serialiser") as raised:
        SETTERS[how](app)
    assert "did you mean 'task_serializer'" in str(raised.value)


def test_unknown_setting_in_the_constructor() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'result_expires'"):
        Celeriac("x", result_expire=10)
    with pytest.raises(ImproperlyConfigured, match="completely_unknown"):
        Celeriac("x", completely_unknown=1)


def test_reading_an_unknown_setting_is_an_error(app: Celeriac) -> None:
    with pytest.raises(AttributeError, match="task_serialiser"):
        _ = app.conf.task_serialiser
    with pytest.raises(ConfigurationError):
        _ = app.conf["task_serialiser"]


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    name = f"celeriacconfig_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_config_from_object_module_path(
    app: Celeriac, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_module(
        tmp_path,
        monkeypatch,
        "import os\n"
        "task_default_queue = 'from-module'\n"
        "task_routes = {'a.*': 'routed'}\n"
        "result_expires = 120\n"
        "UPPER_CASE_IS_IGNORED = 1\n"
        "_private = 2\n",
    )
    app.config_from_object(name)
    assert app.conf.task_default_queue == "from-module"
    assert app.conf.task_routes == {"a.*": "routed"}
    assert app.conf.result_expires == 120


def test_config_from_object_unknown_name_in_module(
    app: Celeriac, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_module(tmp_path, monkeypatch, "task_acks_lat = True\n")
    with pytest.raises(ConfigurationError, match="task_acks_late"):
        app.config_from_object(name)


def test_config_from_object_missing_module(app: Celeriac) -> None:
    with pytest.raises(ConfigurationError, match="no_such_config_module"):
        app.config_from_object("no_such_config_module")


def test_config_from_object_instance(app: Celeriac) -> None:
    app.config_from_object(SimpleNamespace(task_default_queue="obj", task_time_limit=30))
    assert (app.conf.task_default_queue, app.conf.task_time_limit) == ("obj", 30)


def test_config_from_object_class(app: Celeriac) -> None:
    def route(name: str, *args: Any, **kwargs: Any) -> str:
        return "routed"

    class Config:
        task_default_queue = "cls"
        task_serializer = "json"
        task_routes = staticmethod(route)

        def helper(self) -> None: ...

    app.config_from_object(Config)
    assert app.conf.task_default_queue == "cls"
    assert app.conf.task_routes is route


def test_config_from_object_django_namespace(
    app: Celeriac, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_module(
        tmp_path,
        monkeypatch,
        "DEBUG = True\n"
        "INSTALLED_APPS = ['django.contrib.admin']\n"
        "CELERY_TASK_DEFAULT_QUEUE = 'django'\n"
        "CELERY_TASK_ALWAYS_EAGER = True\n"
        "CELERY_RESULT_EXPIRES = 30\n",
    )
    app.config_from_object(name, namespace="CELERY")
    assert app.conf.task_default_queue == "django"
    assert app.conf.task_always_eager is True
    assert app.conf.result_expires == 30


def test_config_from_object_module_colon_attribute(
    app: Celeriac, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The line every Django project has: app.config_from_object('django.conf:settings', ...)
    name = write_module(
        tmp_path,
        monkeypatch,
        "class _Settings:\n"
        "    DEBUG = False\n"
        "    CELERY_TASK_DEFAULT_QUEUE = 'colon'\n"
        "settings = _Settings()\n",
    )
    app.config_from_object(f"{name}:settings", namespace="CELERY")
    assert app.conf.task_default_queue == "colon"
    with pytest.raises(ConfigurationError, match="nothing"):
        app.config_from_object(f"{name}:nothing")


def test_config_from_object_namespace_unknown_name(app: Celeriac) -> None:
    settings = SimpleNamespace(CELERY_TASK_DEFAULT_QUEUEE="x", OTHER=1)
    # The nearest name is spelled as the project spells its names.
    with pytest.raises(ConfigurationError, match="did you mean 'CELERY_TASK_DEFAULT_QUEUE'"):
        app.config_from_object(settings, namespace="CELERY")


def test_environment_urls_are_used_when_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_BROKER_URL", "memory://from-env-broker")
    monkeypatch.setenv("CELERIAC_RESULT_BACKEND", "memory://from-env-backend")
    app = Celeriac("env")
    assert app.broker.url == "memory://from-env-broker"
    assert app.backend.url == "memory://from-env-backend"


def test_environment_broker_is_also_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_BROKER_URL", "memory://env-only")
    monkeypatch.delenv("CELERIAC_RESULT_BACKEND", raising=False)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    app = Celeriac("env")
    assert app.broker.url == app.backend.url == "memory://env-only"


def test_settings_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_BROKER_URL", "memory://env-loses")
    monkeypatch.setenv("CELERIAC_RESULT_BACKEND", "memory://env-loses-too")
    app = Celeriac("env", broker="memory://set-broker", backend="memory://set-backend")
    assert app.broker.url == "memory://set-broker"
    assert app.backend.url == "memory://set-backend"


def test_environment_app_works_end_to_end(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CELERIAC_BROKER_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.delenv("CELERIAC_RESULT_BACKEND", raising=False)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    app = Celeriac("env")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(1, 2)
    in_process_worker(app).drain()
    assert result.get(timeout=1) == 3
    assert (tmp_path / "env.db").exists()
    app.close()


@pytest.mark.parametrize("where", ["broker", "backend", "check"])
def test_unknown_url_scheme_is_an_error_without_the_password(where: str) -> None:
    url = "foo://user:secret@host/0"
    app = (
        Celeriac("x", broker=url)
        if where != "backend"
        else Celeriac("x", broker="memory://ok", backend=url)
    )
    with pytest.raises(ConfigurationError) as raised:
        if where == "check":
            app.check()
        else:
            getattr(app, where)
    text = str(raised.value)
    assert "foo://" in text
    assert "secret" not in text
    assert "secret" not in repr(raised.value)
    cause = raised.value.__cause__ or raised.value.__context__
    assert cause is None or "secret" not in str(cause)


def test_pickle_without_a_security_key_fails_at_check() -> None:
    app = Celeriac("x", broker="memory://pickle", task_serializer="pickle")
    with pytest.raises(ConfigurationError, match="security_key"):
        app.check()
    accepts = Celeriac("x", broker="memory://pickle", accept_content=["json", "pickle"])
    with pytest.raises(ConfigurationError, match="security_key"):
        accepts.check()
    signed = Celeriac(
        "x", broker="memory://pickle", task_serializer="pickle", security_key="secret-key"
    )
    signed.check()


def test_unknown_serializer_fails_at_check() -> None:
    app = Celeriac("x", broker="memory://ser", task_serializer="yaml")
    with pytest.raises(ConfigurationError, match="yaml"):
        app.check()


def test_durations_accept_timedelta(app: Celeriac) -> None:
    app.conf.update(
        result_expires=datetime.timedelta(hours=1),
        task_time_limit=datetime.timedelta(minutes=2),
        broker_transport_options={"lease_seconds": datetime.timedelta(seconds=45)},
    )
    app.check()
    assert app.conf.seconds("result_expires") == 3600.0
    assert app.conf.seconds("task_time_limit") == 120.0
    assert app.conf.lease_seconds() == 45.0


def test_bad_duration_fails_at_check(app: Celeriac) -> None:
    app.conf.result_expires = "one hour"
    with pytest.raises(ConfigurationError, match="result_expires"):
        app.check()


def test_visibility_timeout_is_the_lease(app: Celeriac) -> None:
    app.conf.broker_transport_options = {"visibility_timeout": 90}
    assert app.conf.lease_seconds() == 90.0
    app.conf.broker_transport_options = {"lease_seconds": 0.1}
    with pytest.raises(ConfigurationError, match="lease"):
        app.check()


def test_bad_task_routes_fail_at_check(app: Celeriac) -> None:
    app.conf.task_routes = 42
    with pytest.raises(ConfigurationError, match="task_routes"):
        app.check()


def test_settings_changed_after_creation_are_used(tmp_path: Path) -> None:
    app = Celeriac("late")
    app.conf.broker_url = f"sqlite:///{tmp_path}/late.db"
    assert app.broker.url == f"sqlite:///{tmp_path}/late.db"
    app.close()


def test_time_limits_accept_timedelta(app: Celeriac) -> None:
    from celeriac import Task

    @app.task(bind=True, time_limit=datetime.timedelta(minutes=1))
    def limits(self: Task[Any, Any]) -> list[float | None]:
        return [self.request.time_limit, self.request.soft_time_limit]

    result = limits.apply_async(soft_time_limit=datetime.timedelta(seconds=30))
    in_process_worker(app).drain()
    assert result.get(timeout=1) == [60.0, 30.0]
