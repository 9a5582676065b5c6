"""What a running task can do, with real worker subprocesses, written from Celery's "Tasks"
guide: custom states and the progress-bar pattern, ``self.request``'s fields, ``current_task``,
``self.replace()``, ``AbortableTask``, ``get_task_logger``, and ``get()`` inside a task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celeriac, chain
from celeriac.contrib.abortable import AbortableAsyncResult
from celeriac.result import AsyncResult
from support.processes import WorkerProcess
from support.waiting import wait_for

TIMEOUT = 30


@pytest.fixture
def runtime_worker(sqlite_url: str) -> Iterator[WorkerProcess]:
    with WorkerProcess(sqlite_url, "-c", "2", app="runtime") as worker:
        yield worker


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_the_progress_bar_pattern(
    pool: str, sqlite_url: str, client: Celeriac, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    with WorkerProcess(sqlite_url, "-P", pool, "-c", "1", app="runtime"):
        result = client.send_task("runtime.progress", (3, str(gate)))
        for step in range(3):

            def at_step(step: int = step) -> bool:
                return result.state == "PROGRESS" and result.info["current"] == step

            assert wait_for(at_step, TIMEOUT), (result.state, result.info)
            assert result.info == {"current": step, "total": 3}
            assert not result.ready()
            Path(f"{gate}.{step}").touch()
        assert result.get(timeout=TIMEOUT) == {"current": 3, "total": 3, "status": "done"}
        assert result.state == "SUCCESS"


def test_a_final_state_set_by_update_state_is_kept(
    runtime_worker: WorkerProcess, client: Celeriac
) -> None:
    result = client.send_task("runtime.settles_early")
    assert result.get(timeout=TIMEOUT) == "set by update_state"


def test_the_request_has_celerys_fields(runtime_worker: WorkerProcess, client: Celeriac) -> None:
    result = client.send_task("runtime.fields", queue="celeriac", priority=3, soft_time_limit=20)
    seen = result.get(timeout=TIMEOUT)
    assert seen["delivery_info"] == {
        "exchange": "",
        "routing_key": "celeriac",
        "priority": 3,
        "redelivered": False,
        "queue": "celeriac",
    }
    assert seen["id"] == seen["correlation_id"] == result.id
    assert seen["reply_to"] is None
    assert seen["is_eager"] is False
    assert seen["utc"] is True
    assert seen["timelimit"] == [None, 20]
    assert seen["argsrepr"] == "()" and seen["kwargsrepr"] == "{}"
    assert seen["retries"] == 0 and seen["stamps"] == {}
    assert seen["hostname"]


def test_the_request_knows_its_chain(runtime_worker: WorkerProcess, client: Celeriac) -> None:
    first = client.signature("runtime.fields")
    then = client.signature("runtime.add", (1, 2), immutable=True)
    result = chain(first, then).apply_async()
    assert result.get(timeout=TIMEOUT) == 3
    seen = result.parent.get(timeout=TIMEOUT)
    assert [step["task"] for step in seen["chain"]] == ["runtime.add"]
    assert seen["chain"][0]["options"]["task_id"] == result.id


def test_a_message_delivered_again_says_so(
    runtime_worker: WorkerProcess, client: Celeriac, tmp_path: Path
) -> None:
    result = client.send_task("runtime.dies_once", (str(tmp_path / "died"),))
    assert result.get(timeout=TIMEOUT) is True


def test_current_task_is_the_running_task(runtime_worker: WorkerProcess, client: Celeriac) -> None:
    result = client.send_task("runtime.who_am_i")
    assert result.get(timeout=TIMEOUT) == {"id": result.id, "name": "runtime.who_am_i"}


def test_a_replaced_task_returns_the_replacements_result(
    runtime_worker: WorkerProcess, client: Celeriac
) -> None:
    result = client.send_task("runtime.replaced_by_add", (5,))
    assert result.get(timeout=TIMEOUT) == 15
    assert AsyncResult(result.id, client).state == "SUCCESS"


def test_replaced_by_a_chain_the_last_task_takes_the_id(
    runtime_worker: WorkerProcess, client: Celeriac
) -> None:
    result = client.send_task("runtime.replaced_by_chain", (4,))
    assert result.get(timeout=TIMEOUT) == 10  # (4 + 1) * 2


def test_replaced_by_a_group_the_id_holds_the_list(
    runtime_worker: WorkerProcess, client: Celeriac
) -> None:
    result = client.send_task("runtime.replaced_by_group", (10,))
    assert result.get(timeout=TIMEOUT) == [11, 12]


def test_the_chain_and_links_of_a_replaced_task_go_on_after_it(
    runtime_worker: WorkerProcess, client: Celeriac, tmp_path: Path
) -> None:
    out = tmp_path / "collected"
    link = client.signature("runtime.collect", (str(out),))
    first = client.signature("runtime.replaced_by_add", (1,))
    first.link(link)
    result = chain(first, client.signature("runtime.mul", (3,))).apply_async()
    assert result.get(timeout=TIMEOUT) == 33  # (1 + 10) * 3
    assert result.parent.get(timeout=TIMEOUT) == 11
    assert wait_for(lambda: out.exists() and out.read_text() == "11\n", TIMEOUT), out


def test_a_replaced_chord_member_still_counts(
    runtime_worker: WorkerProcess, client: Celeriac
) -> None:
    from celeriac import chord

    header = [
        client.signature("runtime.replaced_by_add", (1,)),
        client.signature("runtime.add", (2, 2)),
    ]
    result = chord(header)(client.signature("runtime.collect", ("/dev/null",)))
    assert result.get(timeout=TIMEOUT) == [11, 4]


def test_an_abortable_task_stops_when_aborted(
    runtime_worker: WorkerProcess, client: Celeriac, tmp_path: Path
) -> None:
    gate = tmp_path / "running"
    sent = client.send_task("runtime.abortable_loop", (str(gate),))
    result = AbortableAsyncResult(sent.id, client)
    assert wait_for(gate.exists, TIMEOUT)
    assert not result.is_aborted()
    assert result.abort() is True
    assert result.get(timeout=TIMEOUT) == "aborted"
    assert not result.is_aborted()  # its own outcome replaced the mark
    assert result.abort() is False  # it ended: nothing to ask any more


def test_the_task_logger_carries_the_task_name_and_id(
    sqlite_url: str, client: Celeriac, tmp_path: Path
) -> None:
    log = tmp_path / "tasks.log"
    with WorkerProcess(sqlite_url, app="runtime", CELERIAC_TEST_TASK_LOG=str(log)):
        result = client.send_task("runtime.logs", ("hello from a task",))
        task_id = result.get(timeout=TIMEOUT)
    text = log.read_text()
    assert f"runtime.logs[{task_id}]: hello from a task" in text
    assert "???[???]: module loaded" in text
    assert "INFO/" in text


def test_get_inside_a_task_is_refused_unless_allowed(
    runtime_worker: WorkerProcess, client: Celeriac
) -> None:
    refused = client.send_task("runtime.joins").get(timeout=TIMEOUT)
    assert refused.startswith("refused: Never call result.get() within a task!")
    assert client.send_task("runtime.joins_allowed").get(timeout=TIMEOUT) == 4
    assert client.send_task("runtime.joins_without_sync_check").get(timeout=TIMEOUT) == 6


def test_progress_replace_and_abort_on_redis(tmp_path: Path) -> None:
    from support.redis_server import RedisServer

    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    client = Celeriac("client", broker=server.url())
    gate = tmp_path / "gate"
    try:
        with WorkerProcess(server.url(), "-c", "2", app="runtime"):
            progress = client.send_task("runtime.progress", (1, str(gate)))
            assert wait_for(lambda: progress.state == "PROGRESS", TIMEOUT), progress.state
            assert progress.info == {"current": 0, "total": 1}
            Path(f"{gate}.0").touch()
            assert progress.get(timeout=TIMEOUT)["status"] == "done"
            replaced = client.send_task("runtime.replaced_by_chain", (1,))
            assert replaced.get(timeout=TIMEOUT) == 4
            running = tmp_path / "running"
            loop = client.send_task("runtime.abortable_loop", (str(running),))
            assert wait_for(running.exists, TIMEOUT)
            AbortableAsyncResult(loop.id, client).abort()
            assert loop.get(timeout=TIMEOUT) == "aborted"
    finally:
        client.close()
        server.close()
