"""The worker's reader of control commands backs off while the broker cannot be reached."""

from __future__ import annotations

import logging

import pytest

from celeriac.brokers.memory import MemoryBroker
from celeriac.control import encode_command
from celeriac.exceptions import BrokerError
from celeriac.worker.commands import CommandReader
from support.clock import FakeClock


class FlakyBroker(MemoryBroker):
    """A memory broker whose broadcast log cannot be read while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.reads = 0

    def read_broadcasts(self, cursor: str | None) -> tuple[list[bytes], str]:
        self.reads += 1
        if self.down:
            raise BrokerError("broker down")
        return super().read_broadcasts(cursor)


def test_reads_back_off_while_the_broker_is_down_and_resume_at_once_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, clock = FlakyBroker(), FakeClock(0.0)
    reader = CommandReader(broker, clock=clock)
    broker.down = True
    # The worker asks every 0.2 s for 10 s.
    for _ in range(50):
        assert reader.refresh() == []
        clock.advance(0.2)
    # 0.25, 0.5, 1, 2, 2, 2...: about 8 tries in 10 s instead of 50, one warning each.
    assert 6 <= broker.reads <= 9
    warnings = [r for r in caplog.records if "cannot read control commands" in r.message]
    assert len(warnings) == broker.reads
    assert all(r.levelno == logging.WARNING for r in warnings)

    broker.down = False
    broker.broadcast(encode_command("revoke", ids=["t1"], terminate=True, signal=9))
    clock.advance(2.0)  # at most one back-off step later, the read goes through
    assert [(t.task_id, t.signum) for t in reader.refresh()] == [("t1", 9)]
    assert "t1" in reader
    reads = broker.reads
    reader.refresh()
    assert broker.reads == reads + 1  # back to reading every time it is asked


def test_read_raises_for_the_workers_start_up() -> None:
    broker = FlakyBroker()
    broker.down = True
    with pytest.raises(BrokerError):
        CommandReader(broker).read()
