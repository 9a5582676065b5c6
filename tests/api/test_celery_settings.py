"""Every setting name Celery knows is accepted: the same as celeriac's, moot, or not supported
yet, with one line at worker and beat start-up for the last two; old upper-case names, Django's
namespace, Celery's environment variables and ``config_from_envvar``.

The names come from ``celery_5_7_settings.txt``, written from Celery 5.7 (celery is not a
dependency of the tests).
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from celeriac import Celeriac, ConfigurationError, ImproperlyConfigured, config
from celeriac.beat import Beat
from celeriac.celery_settings import BY_NAME, BY_OLD_NAME, GUIDE, TABLE, Kind
from celeriac.config import DEFAULTS
from celeriac.testing import in_process_worker, use_memory
from support.processes import WorkerProcess

NAMES = Path(__file__).with_name("celery_5_7_settings.txt")
ROOT = Path(__file__).resolve().parents[2]
CELERY_VARIABLES = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_BROKER_READ_URL")
OUR_VARIABLES = ("CELERIAC_BROKER_URL", "CELERIAC_RESULT_BACKEND")


def celery_names() -> list[tuple[str, str | None]]:
    """(name, old name or None) for every name in the committed list."""
    rows = []
    for line in NAMES.read_text().splitlines():
        if line and not line.startswith("#"):
            name, old = line.split()
            rows.append((name, None if old == "-" else old))
    return rows


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Notes not yet logged in this process, and no broker or backend in the environment."""
    monkeypatch.setattr(config, "_LOGGED", set())
    for name in (*CELERY_VARIABLES, *OUR_VARIABLES, "CELERY_BROKER_WRITE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mem() -> Iterator[Celeriac]:
    """An app on the memory broker."""
    app = Celeriac("settings")
    with use_memory(app):
        yield app


def notes_logged(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "celeriac.config"]


# -- the table ---------------------------------------------------------------------------------
def test_the_table_has_every_celery_name_with_its_old_name() -> None:
    listed = dict(celery_names())
    assert set(listed) == set(BY_NAME)
    assert {name: row.old for name, row in BY_NAME.items()} == listed
    assert len(BY_OLD_NAME) == sum(1 for old in listed.values() if old)


def test_same_means_a_setting_of_celeriac_and_others_are_not() -> None:
    for row in TABLE:
        if row.kind is Kind.SAME:
            assert row.name in DEFAULTS, row.name
        else:
            assert row.note, row.name
            # celeriac keeps two of Celery's names that change nothing, to read them back
            assert row.name not in DEFAULTS or row.name in {
                "enable_utc",
                "task_create_missing_queues",
            }


@pytest.mark.parametrize("name, old", celery_names())
def test_every_celery_name_and_old_name_is_accepted(name: str, old: str | None) -> None:
    conf = Celeriac("walk").conf
    value = conf[name]  # readable before it is set
    conf[name] = value
    conf.update({name: value})
    if old is not None:
        conf[old] = value
        assert conf[old] == conf[name]
        setattr(conf, old, value)
    config_object = SimpleNamespace(**{old or name: value})
    Celeriac("walk").config_from_object(config_object)
    Celeriac("walk").config_from_object(
        SimpleNamespace(**{f"CELERY_{name.upper()}": value}), namespace="CELERY"
    )


def test_the_guide_has_the_table() -> None:
    """docs/migrating-from-celery.md lists every name, in its group, with its kind and note."""
    group, seen = "", {}
    for line in (ROOT / GUIDE).read_text().splitlines():
        if line.startswith("### "):
            group = line[4:]
        found = re.match(r"\| `(\w+)` \| (`\w+`|-) \| (.*) \|$", line)
        if found:
            seen[found[1]] = (group, found[2].strip("`"), found[3])
    assert set(seen) == set(BY_NAME)
    for row in TABLE:
        group, old, cell = seen[row.name]
        assert (group, old) == (row.group, row.old or "-"), row.name
        assert cell.startswith(row.kind.value), row.name
        assert row.note.replace("|", "\\|") in cell, row.name


# -- each kind of name ---------------------------------------------------------------------------
def test_old_names_are_aliases(mem: Celeriac) -> None:
    mem.conf.update(CELERYD_CONCURRENCY=3, CELERY_TASK_RESULT_EXPIRES=60, CELERY_ALWAYS_EAGER=True)
    assert mem.conf.worker_concurrency == 3
    assert mem.conf.result_expires == 60
    assert mem.conf.CELERYD_CONCURRENCY == 3

    @mem.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add.delay(2, 2).get(timeout=1) == 4  # CELERY_ALWAYS_EAGER took effect
    del mem.conf["CELERY_ALWAYS_EAGER"]
    assert mem.conf.task_always_eager is False


def test_a_config_of_old_names_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_module(
        tmp_path,
        monkeypatch,
        "BROKER_URL = 'memory://old-only'\n"
        "CELERY_RESULT_BACKEND = 'memory://old-only-results'\n"
        "CELERY_TIMEZONE = 'Asia/Shanghai'\n"
        "CELERYBEAT_SCHEDULE = {'tick': {'task': 'x', 'schedule': 5.0}}\n"
        "CELERY_IMPORTS = ('a.b',)\n"
        "SOMETHING_ELSE = 1\n",
    )
    app = Celeriac("old")
    app.config_from_object(name)
    assert app.broker.url == "memory://old-only"
    assert app.backend.url == "memory://old-only-results"
    assert app.conf.timezone == "Asia/Shanghai"
    assert list(app.conf.beat_schedule) == ["tick"]
    assert app.conf.imports == ("a.b",)


def test_moot_and_not_yet_are_kept_and_read_back(mem: Celeriac) -> None:
    assert mem.conf.task_store_errors_even_if_ignored is None
    mem.conf.task_store_errors_even_if_ignored = True
    mem.conf.CELERY_SEND_EVENTS = True
    assert mem.conf.task_store_errors_even_if_ignored is True
    assert mem.conf.worker_send_task_events is True
    assert mem.conf["task_reject_on_worker_lost"] is None
    del mem.conf["task_store_errors_even_if_ignored"]
    assert mem.conf.task_store_errors_even_if_ignored is None


def test_moot_is_said_once_at_info_and_not_yet_once_at_warning(
    mem: Celeriac, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "celeriac.config")
    mem.conf.update(
        CELERY_REJECT_ON_WORKER_LOST=True,
        result_extended=True,
        task_store_errors_even_if_ignored=True,
    )
    for _ in range(3):
        mem.check()
        mem.finalize()
    logged = {text.split()[0]: (level, text) for level, text in notes_logged(caplog)}
    assert len(logged) == 3
    level, moot = logged["task_reject_on_worker_lost"]
    assert level == logging.INFO
    assert moot.startswith("task_reject_on_worker_lost (CELERY_REJECT_ON_WORKER_LOST) is not")
    assert "lease" in moot
    level, extended = logged["result_extended"]
    assert level == logging.WARNING
    assert "result_extended (CELERY_RESULT_EXTENDED) is not supported yet" in extended
    assert f'"Task result backend settings" under Settings in {GUIDE}' in extended
    level, errors = logged["task_store_errors_even_if_ignored"]
    assert level == logging.WARNING
    assert f'"Task execution settings" under Settings in {GUIDE}' in errors
    Celeriac("another", broker="memory://another", result_extended=True).check()
    assert len(notes_logged(caplog)) == 3  # once a process, not once an app


def test_celerys_behaviour_that_is_celeriacs_needs_no_note(mem: Celeriac) -> None:
    mem.conf.update(
        worker_send_task_events=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=True,
        enable_utc=True,
        task_default_rate_limit=None,
    )
    assert mem.conf.notes() == []
    mem.conf.enable_utc = False
    assert [note.key for note in mem.conf.notes()] == ["enable_utc"]


def test_workers_and_beat_say_it_but_a_client_that_sends_does_not(
    mem: Celeriac, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "celeriac.config")
    mem.conf.cosmosdbsql_database_name = "celery"  # not yet: one warning

    @mem.task
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(1, 1)
    assert notes_logged(caplog) == []
    in_process_worker(mem)
    assert [level for level, _ in notes_logged(caplog)] == [logging.WARNING]
    config._LOGGED.clear()
    Beat(mem)
    assert len(notes_logged(caplog)) == 2


def test_an_unknown_name_is_an_error_with_the_nearest_name(mem: Celeriac) -> None:
    with pytest.raises(
        ConfigurationError, match=r"'task_acks_lat' \(did you mean 'task_acks_late'"
    ):
        mem.conf.task_acks_lat = True
    with pytest.raises(ConfigurationError, match="did you mean 'worker_send_task_events'"):
        mem.conf.update(worker_send_task_event=True)
    with pytest.raises(ConfigurationError, match="did you mean 'CELERY_ALWAYS_EAGER'"):
        mem.conf["CELERY_ALWAYS_EAGR"] = True
    with pytest.raises(ImproperlyConfigured, match="did you mean 'CELERY_TASK_ALWAYS_EAGER'"):
        settings = SimpleNamespace(DEBUG=True, CELERY_TASK_ALWAYS_EAGR=True)
        mem.config_from_object(settings, namespace="CELERY")
    with pytest.raises(ConfigurationError, match="'result_extend'"):
        mem.config_from_object(SimpleNamespace(result_extend=True))


def test_a_projects_own_names_in_a_config_object_are_ignored_with_a_warning(
    mem: Celeriac, caplog: pytest.LogCaptureFixture
) -> None:
    """Celery reads whatever a config object holds; a project's own ``CELERY_ENABLED`` or a
    module's helper value must not stop it. Only a near-miss of a setting is an error."""
    caplog.set_level(logging.INFO, "celeriac.config")
    settings = SimpleNamespace(CELERY_ENABLED=True, CELERY_TASK_ALWAYS_EAGER=True)
    mem.config_from_object(settings, namespace="CELERY")
    mem.config_from_object(SimpleNamespace(base_dir="/srv/project", timezone="UTC"))
    mem.check()
    assert mem.conf.task_always_eager is True
    logged = dict((text.split()[0], level) for level, text in notes_logged(caplog))
    assert logged["CELERY_ENABLED"] == logged["base_dir"] == logging.WARNING
    assert any("base_dir is ignored: it names no setting" in t for _, t in notes_logged(caplog))


# -- Django's namespace ------------------------------------------------------------------------
def test_django_settings_with_the_namespace(mem: Celeriac) -> None:
    settings = SimpleNamespace(
        DEBUG=False,
        DATABASES={"default": {}},
        TIME_ZONE="Europe/Berlin",
        CELERY_BROKER_URL="memory://django",
        CELERY_TASK_ALWAYS_EAGER=True,
        CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP=True,
        CELERY_RESULT_EXTENDED=True,
        CELERY_TASK_RESULT_EXPIRES=120,  # an old name, which the namespace reads too
        CELERYD_PREFETCH_MULTIPLIER=2,
        CELERY_ACCEPT_CONTENT=["json"],
    )
    mem.config_from_object(settings, namespace="CELERY")
    conf = mem.conf
    assert conf.broker_url == "memory://django"
    assert conf.task_always_eager is True
    assert conf.broker_connection_retry_on_startup is True
    assert conf.result_extended is True
    assert conf.result_expires == 120
    assert conf.worker_prefetch_multiplier == 2
    assert conf.timezone == "Europe/Berlin"  # Django's TIME_ZONE, as in Celery
    assert sorted(note.key for note in conf.notes()) == ["TIME_ZONE", "result_extended"]


def test_the_namespaced_name_wins_over_the_old_one_and_says_so(mem: Celeriac) -> None:
    settings = SimpleNamespace(CELERY_BROKER_URL="memory://new", BROKER_URL="memory://old")
    mem.config_from_object(settings, namespace="CELERY")
    assert mem.conf.broker_url == "memory://new"
    (note,) = mem.conf.notes()
    assert note.level == logging.WARNING
    assert note.text.startswith("BROKER_URL is ignored: CELERY_BROKER_URL names the same")


def test_old_and_new_names_may_be_mixed(mem: Celeriac) -> None:
    """Celery refuses it; celeriac reads each name for what it is."""
    mixed = SimpleNamespace(
        task_default_queue="mixed",
        CELERYD_CONCURRENCY=5,
        result_expires=10,
        CELERY_TASK_RESULT_EXPIRES=10,  # the same value: nothing to say
        task_serializer="json",
        CELERY_TASK_SERIALIZER="pickle",  # another value: the new name wins
    )
    mem.config_from_object(mixed)
    conf = mem.conf
    assert (conf.task_default_queue, conf.worker_concurrency) == ("mixed", 5)
    assert (conf.result_expires, conf.task_serializer) == (10, "json")
    assert [note.key for note in conf.notes()] == ["CELERY_TASK_SERIALIZER"]


def test_a_django_style_name_without_the_namespace_is_ignored_as_celery_does(
    mem: Celeriac,
) -> None:
    mem.config_from_object(SimpleNamespace(CELERY_TASK_ALWAYS_EAGER=True, CELERY_FOO=1))
    assert mem.conf.task_always_eager is False
    (note,) = mem.conf.notes()
    assert "CELERY_TASK_ALWAYS_EAGER is ignored, as Celery ignores it" in note.text
    assert "namespace='CELERY'" in note.text


def test_an_upper_case_name_near_an_old_one_is_ignored_with_a_warning(mem: Celeriac) -> None:
    """Celery ignores upper-case names it does not know, and so does celeriac: they may be any
    constant of a config module or Django's settings. One a letter away from an old name is
    most likely a misspelling, and is named."""
    settings = SimpleNamespace(CELERYD_CONCURENCY=4, BROKER_URI="memory://typo", DEBUG=1)
    mem.config_from_object(settings, namespace="CELERY")
    mem.config_from_object(SimpleNamespace(**vars(settings), CELERY_EMAIL_BACKEND="smtp"))
    assert mem.conf.worker_concurrency is None
    texts = sorted(note.text for note in mem.conf.notes())
    assert texts == [
        "BROKER_URI is ignored: it names no setting (did you mean 'BROKER_URL'?)",
        "CELERYD_CONCURENCY is ignored: it names no setting (did you mean 'CELERYD_CONCURRENCY'?)",
    ]


def test_helpers_and_imports_of_a_config_module_are_skipped(
    mem: Celeriac, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_module(
        tmp_path,
        monkeypatch,
        "import os\n"
        "from datetime import timedelta, timezone\n"
        "def route(name, args, kwargs, options, task=None, **kw):\n"
        "    return {'queue': 'routed'}\n"
        "task_routes = (route,)\n"
        "broker_failover_strategy = route\n"
        "result_expires = timedelta(hours=1)\n",
    )
    mem.config_from_object(name)
    assert mem.conf.timezone == "UTC"  # not datetime.timezone
    assert mem.conf.result_expires.total_seconds() == 3600
    assert mem.conf.broker_failover_strategy.__name__ == "route"


def test_visibility_timeout_is_the_lease_and_says_what_leases_do(mem: Celeriac) -> None:
    mem.conf.broker_transport_options = {"visibility_timeout": 43200}
    assert mem.conf.lease_seconds() == 43200
    (note,) = mem.conf.notes()
    assert note.level == logging.INFO
    assert "visibility_timeout'] (43200) is taken as the lease" in note.text
    mem.conf.broker_transport_options = {"visibility_timeout": 43200, "lease_seconds": 10}
    assert mem.conf.notes() == []


# -- environment -------------------------------------------------------------------------------
def test_celerys_variables_name_the_broker_and_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "memory://celery-env")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "memory://celery-env-results")
    app = Celeriac("env")
    assert app.broker.url == "memory://celery-env"
    assert app.backend.url == "memory://celery-env-results"
    assert app.conf.notes() == []


def test_celeriacs_variable_wins_over_celerys_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "memory://celery-env")
    monkeypatch.setenv("CELERIAC_BROKER_URL", "memory://celeriac-env")
    app = Celeriac("env")
    assert app.broker.url == app.backend.url == "memory://celeriac-env"
    (note,) = app.conf.notes()
    assert note.level == logging.WARNING
    assert "$CELERY_BROKER_URL is set but not used: $CELERIAC_BROKER_URL" in note.text


def test_a_setting_wins_over_celerys_variable_and_says_so_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "memory://celery-env")
    app = Celeriac("env", broker="memory://b", backend="redis://:hunter2@host/0")
    assert app.conf.result_backend_or_default() == "redis://:hunter2@host/0"
    (note,) = app.conf.notes()
    assert "$CELERY_RESULT_BACKEND is set but not used: result_backend" in note.text
    assert "hunter2" not in note.text


def test_celerys_read_and_write_urls_are_not_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_READ_URL", "redis://replica/0")
    (note,) = Celeriac("env", broker="memory://rw").conf.notes()
    assert note.key == "$CELERY_BROKER_READ_URL"
    assert "not supported yet" in note.text


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    name = f"celeriacsettings_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_config_from_envvar(mem: Celeriac, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_module(tmp_path, monkeypatch, "CELERY_DEFAULT_QUEUE = 'from-env'\n")
    monkeypatch.setenv("CELERY_CONFIG_MODULE", name)
    assert mem.config_from_envvar("CELERY_CONFIG_MODULE") is True
    assert mem.conf.task_default_queue == "from-env"


def test_config_from_envvar_unset(mem: Celeriac, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_CONFIG_MODULE", raising=False)
    with pytest.raises(ImproperlyConfigured, match="CELERY_CONFIG_MODULE is not set"):
        mem.config_from_envvar("CELERY_CONFIG_MODULE")
    assert mem.config_from_envvar("CELERY_CONFIG_MODULE", silent=True) is False


def test_config_from_envvar_missing_module(mem: Celeriac, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_CONFIG_MODULE", "no_such_celeriac_config")
    with pytest.raises(ConfigurationError, match="no_such_celeriac_config"):
        mem.config_from_envvar("CELERY_CONFIG_MODULE", force=True)
    assert mem.config_from_envvar("CELERY_CONFIG_MODULE", silent=True) is False


# -- a real worker -------------------------------------------------------------------------------
def test_a_worker_with_old_names_runs_tasks_and_says_each_note_once(tmp_path: Path) -> None:
    used, ignored = f"sqlite:///{tmp_path}/old.db", f"sqlite:///{tmp_path}/env.db"
    client = Celeriac("client", broker=used)
    env = {"CELERIAC_TEST_OLD_BROKER_URL": used}
    with WorkerProcess(ignored, app="old_config", **env) as worker:
        assert client.send_task("old_config.add", (2, 3)).get(timeout=30) == 5
        seen: Any = client.send_task("old_config.settings_seen").get(timeout=30)
    client.close()
    assert seen == ["Europe/Paris", 2, 600, True]
    lines = worker.lines
    assert sum("concurrency 2" in line and "ready:" in line for line in lines) == 1
    expected = [
        ("INFO", "task_reject_on_worker_lost (CELERY_REJECT_ON_WORKER_LOST) is not needed"),
        ("WARNING", "worker_hijack_root_logger (CELERYD_HIJACK_ROOT_LOGGER) is not supported"),
    ]
    for level, text in expected:
        found = [line for line in lines if text in line]
        assert len(found) == 1, (text, worker.output)
        assert f"{level}/MainProcess" in found[0]
    assert not any("broker_connection_retry_on_startup" in line for line in lines)
    assert not any("worker_send_task_events" in line for line in lines)  # True: as celeriac does
