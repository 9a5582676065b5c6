"""Slow outages of Redis: every client call gives up within its deadline, and workers and beat
started while Redis is down wait for it and resume within seconds of it coming back.

A frozen Redis (SIGSTOP) is the hard case: connections are accepted by the kernel and commands
are written, but nothing ever answers, so only a deadline ends the wait.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from celeriac import Celeriac
from celeriac.exceptions import BackendError, CeleriacError, PublishError
from support.processes import CELERIAC, WorkerProcess
from support.redis_server import RedisServer
from support.waiting import wait_for
from support.workers import worker_running

PUBLISH_TIMEOUT = 2.0
SLACK = 0.5  # what the issue allows past a deadline


@pytest.fixture
def frozen(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The test's server, stopped with SIGSTOP for the test (and woken at its end)."""
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        yield redis_server
    finally:
        redis_server.process.send_signal(signal.SIGCONT)


def _fresh_app(url: str, socket_timeout: float = 5.0) -> Celeriac:
    """An app whose Redis connections and clock are its own: the key prefix makes a new
    ``RedisDatabase``, so its clock has never read Redis's ``TIME``."""
    options = {"global_keyprefix": f"{uuid.uuid4().hex}:", "socket_timeout": socket_timeout}
    return Celeriac(
        "client",
        broker=url,
        broker_publish_timeout=PUBLISH_TIMEOUT,
        broker_transport_options=options,
    )


def _timed(call: Callable[[], object]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        call()
    except CeleriacError as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


# -- client calls against a frozen Redis ---------------------------------------------------------


def test_delay_with_redis_frozen_before_the_clock_was_read_fits_the_publish_timeout(
    redis_server: RedisServer,
) -> None:
    # The send's first step reads Redis's clock (its offset is measured once a minute): that
    # read and the publish together get one broker_publish_timeout.
    app = _fresh_app(redis_server.url())
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        took, error = _timed(lambda: app.send_task("jobs.add", (1, 2)))
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert isinstance(error, PublishError), error
    assert "not enqueued" in str(error)
    assert took <= PUBLISH_TIMEOUT + SLACK, f"delay() took {took:.2f}s"
    app.close()


def test_delay_with_redis_frozen_mid_session_fits_the_publish_timeout(
    redis_server: RedisServer,
) -> None:
    app = _fresh_app(redis_server.url())
    app.send_task("jobs.add", (1, 2))  # the clock is read and a connection is open
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        took, error = _timed(lambda: app.send_task("jobs.add", (1, 2)))
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert isinstance(error, PublishError), error
    assert took <= PUBLISH_TIMEOUT + SLACK, f"delay() took {took:.2f}s"
    # Redis answers again: the next send goes through at once.
    app.send_task("jobs.add", (1, 2))
    app.close()


def test_get_with_redis_frozen_gives_up_within_its_timeout(frozen: RedisServer) -> None:
    app = _fresh_app(frozen.url())
    took, error = _timed(lambda: app.AsyncResult("never-sent").get(timeout=1.0))
    assert isinstance(error, BackendError), error
    assert took <= 1.0 + SLACK, f"get(timeout=1) took {took:.2f}s"
    app.close()


def test_revoke_with_redis_frozen_gives_up_within_a_socket_timeout(frozen: RedisServer) -> None:
    # Each Redis round trip, its reconnection included, now ends within socket_timeout (it
    # took two: the round trip, then a reconnection that waited as long again).
    app = _fresh_app(frozen.url(), socket_timeout=1.5)
    took, error = _timed(lambda: app.control.revoke("some-task"))
    assert isinstance(error, CeleriacError), error
    assert took <= 1.5 + SLACK, f"revoke() took {took:.2f}s"
    app.close()


def test_a_control_message_is_retried_while_redis_is_down(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)  # not started yet: connections are refused
    app = _fresh_app(server.url())
    starter = threading.Timer(0.5, server.start)
    starter.start()
    try:
        app.broker.broadcast(b'{"op": "noop"}')  # within the publish timeout, Redis is up
        assert app.broker.read_broadcasts(None)[0] == [b'{"op": "noop"}']
    finally:
        starter.join()
        app.close()
        server.close()


# -- a worker started while Redis is down ----------------------------------------------------------


def _start_in_background(worker: WorkerProcess) -> threading.Thread:
    """Start the worker process without waiting for it to be ready."""
    errors: list[BaseException] = []

    def start() -> None:
        try:
            worker.start(ready_timeout=60)
        except BaseException as exc:  # the test reads the output instead
            errors.append(exc)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    return thread


def _retries(worker: WorkerProcess) -> int:
    return sum("cannot reach the broker" in line for line in worker.lines)


def test_a_worker_started_while_redis_is_down_waits_and_resumes(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    worker = WorkerProcess(server.url(), "-c", "1")
    starting = _start_in_background(worker)
    try:
        assert wait_for(lambda: _retries(worker) >= 1, 20), worker.output
        time.sleep(3.0)
        # At most one line per back-off step (0.1 s doubling to 2 s), never one per 0.2 s turn;
        # the log's own back-off (cli/logs.py) folds repeats of a line into one per 10 s.
        assert 1 <= _retries(worker) <= 8, worker.output
        assert worker.process is not None and worker.process.poll() is None, worker.output
        server.start()
        back = time.monotonic()
        assert wait_for(lambda: "ready:" in worker.output, 5.0), worker.output
        resumed_after = time.monotonic() - back
        client = Celeriac("client", broker=server.url())
        assert client.send_task("jobs.add", (2, 3)).get(timeout=10) == 5
        client.close()
        assert resumed_after < 5.0
    finally:
        worker.stop()
        starting.join(5)
        server.close()


def test_sigterm_stops_a_worker_that_waits_for_redis(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)  # never started
    worker = WorkerProcess(server.url(), "-c", "1")
    starting = _start_in_background(worker)
    try:
        assert wait_for(lambda: _retries(worker) >= 1, 20), worker.output
        time.sleep(1.0)  # into the back-off (its repeated lines are folded: cli/logs.py)
        worker.signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert worker.wait(10) == 0, worker.output
        assert time.monotonic() - stopped < 3.0
    finally:
        worker.stop()
        starting.join(5)


# -- a running worker while Redis is down ----------------------------------------------------------


def test_a_worker_backs_off_reading_control_commands_while_redis_is_down(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="celeriac.worker")
    app = Celeriac("worker", broker=redis_server.url())
    with worker_running(app, pool="threads", concurrency=1):
        assert wait_for(lambda: "ready:" in caplog.text, 10)
        redis_server.kill()
        caplog.clear()
        time.sleep(3.0)
        commands = sum("cannot read control commands" in r.message for r in caplog.records)
    app.close()
    # Every 0.2 s without a back-off would be about 13; 0.25 s doubling to 2 s is 4 or 5.
    assert 1 <= commands <= 6, caplog.text


# -- beat started while Redis is down --------------------------------------------------------------


def test_beat_started_while_redis_is_down_resumes_within_5_s(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    server = RedisServer(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    beat = WorkerProcess(server.url(), app="timed", CELERIAC_TEST_BEAT_LOG=str(log))
    beat.command = [CELERIAC, "-A", "timed", "beat", "-l", "info"]
    beat.start()
    try:

        def failed_ticks() -> int:
            # A line, and the repeats the log folded into it: "(and 5 more like it ...)".
            lines = [line for line in beat.lines if "beat tick failed" in line]
            folded = (re.search(r"\(and (\d+) more like it", line) for line in lines)
            return len(lines) + sum(int(m[1]) for m in folded if m)

        # Five failed ticks: the back-off has reached its cap, whatever the cap is.
        assert wait_for(lambda: failed_ticks() >= 5, 30), beat.output
        server.start()
        back = time.monotonic()
        assert wait_for(lambda: any("sent tick" in line for line in beat.lines), 10), beat.output
        resumed_after = time.monotonic() - back
        # The first fire is due a second (the entry's interval) after the first good tick.
        assert resumed_after < 5.0, beat.output
    finally:
        beat.stop()
        server.close()
