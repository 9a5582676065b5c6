"""The command line's log lines: a repeated warning or error is written once per interval with
a count of those held back; colour only where asked for."""

from __future__ import annotations

import logging

from celeriac.cli.logs import FORMAT, ColorFormatter, RepeatFilter
from support.clock import FakeClock


def _record(message: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("celeriac.worker", level, __file__, 1, message, args, None)


def test_a_repeated_error_passes_once_an_interval_then_counts_the_rest() -> None:
    clock = FakeClock(0.0)
    repeats = RepeatFilter(10.0, clock=clock)
    template = "cannot reach the broker: %s (retrying in %.1fs)"
    passed = []
    # One every 2 s: at 0, 2, ... 14 s; then one at 20 s.
    for delay in (0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0):
        record = _record(template, "Connection refused", delay)
        if repeats.filter(record):
            passed.append(record.getMessage())
        clock.advance(2.0)
    clock.advance(4.0)
    record = _record(template, "Connection refused", 2.0)
    assert repeats.filter(record)
    passed.append(record.getMessage())
    assert passed == [
        "cannot reach the broker: Connection refused (retrying in 0.1s)",
        "cannot reach the broker: Connection refused (retrying in 2.0s)"
        " (and 4 more like it in the last 10s)",
        "cannot reach the broker: Connection refused (retrying in 2.0s)"
        " (and 2 more like it in the last 10s)",
    ]


def test_different_errors_and_lower_levels_always_pass() -> None:
    repeats = RepeatFilter(10.0, clock=FakeClock(0.0))
    failures = [_record("%s failure: %s", f"jobs.add[{n}a-b{n}]", "KeyError") for n in "ab"]
    assert all(repeats.filter(r) for r in failures)
    assert not repeats.filter(_record("%s failure: %s", "jobs.add[aa-ba]", "KeyError"))
    infos = [_record("succeeded in %.4fs", 0.001, level=logging.INFO) for _ in range(3)]
    assert all(repeats.filter(r) for r in infos)


def test_the_colour_formatter_colours_the_level_only() -> None:
    record = _record("boom")
    coloured = ColorFormatter(FORMAT).format(record)
    assert "\x1b[31mERROR\x1b[0m" in coloured and coloured.endswith("] boom")
    assert record.levelname == "ERROR"
    assert "\x1b[" not in logging.Formatter(FORMAT).format(record)
