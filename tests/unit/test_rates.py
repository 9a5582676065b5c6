"""Rate limits: Celery's rate strings, the token bucket, the worker's throttle and commands."""

from __future__ import annotations

import time
from collections import deque

import pytest

from celeriac import Celeriac
from celeriac.brokers.memory import MemoryBroker
from celeriac.control import encode_command
from celeriac.exceptions import ConfigurationError
from celeriac.rates import TokenBucket, parse_rate
from celeriac.testing import in_process_worker, use_memory
from celeriac.worker.commands import CommandReader, RateChange
from celeriac.worker.throttle import Throttle
from support.clock import FakeClock


@pytest.mark.parametrize(
    "text, per_second",
    [
        ("10/s", 10.0),
        ("100/m", 100 / 60),
        ("1000/h", 1000 / 3600),
        ("0.5/s", 0.5),
        (" 6 / m ", 0.1),
        ("5", 5.0),
        (5, 5.0),
        (2.5, 2.5),
        (None, None),
        (0, None),
        ("0", None),
        ("0/m", None),
        ("", None),
    ],
)
def test_celerys_rate_strings(text: str | float | None, per_second: float | None) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("bad", ["10/x", "fast", "-1/s", "/s", "1/s/s", "inf", True, [1]])
def test_a_bad_rate_is_an_error_that_shows_it(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="bad rate limit"):
        parse_rate(bad)  # type: ignore[arg-type]


def test_the_bucket_holds_one_token_and_refills_at_its_rate() -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(5.0, clock=clock)
    assert bucket.take()  # full at first
    assert not bucket.take()
    assert bucket.wait_time() == pytest.approx(0.2)
    clock.advance(0.1)
    assert bucket.wait_time() == pytest.approx(0.1)
    assert bucket.ready() == 0
    clock.advance(0.1)
    assert bucket.ready() == 1 and bucket.wait_time() == 0
    clock.advance(10)  # an idle bucket does not save up a burst
    assert bucket.take() and not bucket.take()


def test_the_throttle_keeps_each_tasks_line_in_order() -> None:
    rates = {"limited": "1/s", "free": None}
    throttle = Throttle(rates.get, None, disabled=False)
    assert throttle.bucket("free") is None
    bucket = throttle.bucket("limited")
    assert bucket is not None and bucket.take()
    first, second = object(), object()
    throttle.hold("limited", first)  # type: ignore[arg-type]
    throttle.hold("limited", second)  # type: ignore[arg-type]
    assert throttle.must_wait("limited", bucket) and throttle.count == 2
    assert throttle.release(4) == []  # no token yet
    assert 0 < (throttle.wait_time() or 0) <= 1.0
    throttle.set_rate("limited", None)  # control: no limit any more
    assert throttle.release(1) == [first]
    assert throttle.release(1) == [second] and throttle.count == 0
    assert throttle.wait_time() is None


def test_default_rate_and_disabling() -> None:
    own = {"mine": "2/s"}.get
    assert Throttle(own, "10/m", disabled=False).bucket("other") is not None
    assert Throttle(own, None, disabled=False).bucket("other") is None
    assert Throttle(own, "10/m", disabled=True).bucket("mine") is None


def test_rate_limit_commands_reach_the_named_running_workers_only() -> None:
    broker = MemoryBroker()
    broker.broadcast(encode_command("rate_limit", task="t", rate="1/s", destination=None))
    reader = CommandReader(broker, hostname="w1@host")
    reader.read()
    assert reader.take_rate_limits() == []  # sent before this worker started
    for destination in (None, ["w1@host"], ["w2@host"]):
        broker.broadcast(
            encode_command("rate_limit", task="t", rate="2/s", destination=destination)
        )
    broker.broadcast(encode_command("rate_limit", rate="2/s"))  # no task: not a command
    reader.read()
    assert reader.take_rate_limits() == [RateChange("t", "2/s"), RateChange("t", "2/s")]
    assert reader.take_rate_limits() == []


def test_a_drained_worker_spaces_limited_calls_and_runs_others_meanwhile() -> None:
    app = Celeriac("drained")
    with use_memory(app):
        done: deque[str] = deque()

        @app.task(rate_limit="20/s")
        def limited(n: int) -> float:
            done.append(f"limited{n}")
            return time.monotonic()

        @app.task
        def free(n: int) -> None:
            done.append(f"free{n}")

        results = [limited.delay(n) for n in range(5)]
        others = [free.delay(n) for n in range(2)]
        worker = in_process_worker(app, pool="threads")
        try:
            assert worker.drain() == 7
        finally:
            worker.close()
        starts = [r.get(timeout=1) for r in results]
        assert [r.get(timeout=1) for r in others] == [None, None]
        assert starts[-1] - starts[0] >= 0.15  # four gaps of 0.05 s
        assert list(done).index("free1") < list(done).index("limited4")
