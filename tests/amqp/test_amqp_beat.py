"""Beat on RabbitMQ: two ``celeriac beat`` processes send every fire of a one-second schedule,
and RabbitMQ takes each once (``publish_once``: a queue per key that holds one token)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from support.processes import CELERIAC, WorkerProcess, count_runs
from support.waiting import wait_for

Workers = Callable[..., WorkerProcess]


def test_two_beats_on_rabbitmq_send_each_fire_once(rabbit_worker: Workers, tmp_path: Path) -> None:
    log = tmp_path / "fires"
    beats = [rabbit_worker(CELERIAC_TEST_BEAT_LOG=log) for _ in range(2)]
    for beat in beats:
        beat.command = [CELERIAC, "-A", "rabbit_jobs", "beat", "-l", "info"]
    with rabbit_worker("-c", "2", CELERIAC_TEST_BEAT_LOG=log) as worker:
        for beat in beats:
            beat.start()
        try:
            assert wait_for(lambda: len(count_runs(log)) >= 4, 20), worker.output
        finally:
            for beat in beats:
                beat.stop()
        time.sleep(1.0)  # what was sent before the stop is run
    fires = count_runs(log)
    assert len(fires) >= 4 and "None" not in fires
    assert set(fires.values()) == {1}, fires  # each due time ran once
