"""A task that outlives RabbitMQ's consumer timeout still runs once.

RabbitMQ closes a channel whose delivery stays unacknowledged past its consumer timeout (30
minutes by default), and gives the message to another consumer: a 45-minute task would run twice.
The broker swaps such a delivery for a fresh copy before half the timeout (``docs/design/amqp.md``).
The server here (3.10) takes the timeout only from its global setting, read when a channel opens,
and checks it once a minute; so this test sets it to 3 s for the moment the worker opens its
channels, puts it back, and runs a task for 70 s: without the swap the channel would be closed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from celeriac import Celeriac, states
from support.processes import WorkerProcess, count_runs
from support.waiting import wait_for

Workers = Callable[..., WorkerProcess]
SHORT_MS = 3000


def _consumer_timeout(milliseconds: int | None) -> int | None:
    """Set the server's consumer timeout (None: read it); return what it is now."""
    expression = (
        "application:get_env(rabbit, consumer_timeout)."
        if milliseconds is None
        else f"application:set_env(rabbit, consumer_timeout, {milliseconds}), "
        "application:get_env(rabbit, consumer_timeout)."
    )
    out = subprocess.run(
        ["rabbitmqctl", "-q", "eval", expression], capture_output=True, text=True, check=True
    ).stdout
    digits = "".join(c for c in out if c.isdigit())
    return int(digits) if digits else None


@pytest.fixture
def short_consumer_timeout() -> Iterator[Callable[[], None]]:
    """Sets a 3 s consumer timeout; the callable it yields puts the server's back (also done
    at the end of the test, whatever happens)."""
    before = _consumer_timeout(None)

    def restore() -> None:
        if before is None:
            subprocess.run(
                ["rabbitmqctl", "-q", "eval", "application:unset_env(rabbit, consumer_timeout)."],
                check=True,
                capture_output=True,
            )
        else:
            _consumer_timeout(before)

    _consumer_timeout(SHORT_MS)
    try:
        yield restore
    finally:
        restore()


def test_a_task_longer_than_the_consumer_timeout_runs_once(
    rabbit_client: Celeriac,
    rabbit_worker: Workers,
    short_consumer_timeout: Callable[[], None],
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    worker = rabbit_worker(
        "-c", "1", CELERIAC_TEST_LEASE=1.5, CELERIAC_TEST_CONSUMER_TIMEOUT=SHORT_MS / 1000
    )
    with worker:
        # The worker's channels are open once it has run a task: then the server's own
        # timeout can come back for everyone else.
        assert rabbit_client.send_task("rabbit_jobs.add", (1, 1)).get(timeout=10) == 2
        short_consumer_timeout()
        long = rabbit_client.send_task("rabbit_jobs.counted", (str(runs), 70.0))
        assert long.get(timeout=120) == long.id
        assert "PRECONDITION_FAILED" not in worker.output, worker.output
        assert "lease of message" not in worker.output, worker.output
        queue = rabbit_client.broker.queue_lengths  # the ack follows the result
        assert wait_for(lambda: queue(["celeriac"]) == {"celeriac": 0}, 10), worker.output
    assert count_runs(runs) == {long.id: 1}
    assert long.state == states.SUCCESS
