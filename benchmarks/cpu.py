"""CPU per task: the worker's main process, its children, and the Redis server.

Rates swing by 2x within an hour on a shared machine; the CPU a peer spends per task much less,
so the suites report both. A worker's CPU is read from ``/proc`` while it still runs: the main
process's own time, and its children's (every live descendant, plus what the main process
already reaped). Redis's is the change of ``INFO cpu`` (``used_cpu_sys + used_cpu_user``, the
whole server: only fair on a server nothing else uses) and of ``INFO commandstats`` (time spent
executing each command, without the network and parsing around it) over the run.
"""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import Row, descendants

MICRO = 1_000_000
TOP_COMMANDS = 3  # per peer: the union of each peer's costliest commands gets a row


def _stat_fields(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()  # fields after the command name, from state


def process_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of the process ``pid`` and of its children so far.

    Children are every live descendant plus those ``pid`` has reaped (its ``cutime`` and
    ``cstime``), so a child that was replaced during the run still counts. Read it before the
    worker stops: what a process used is gone from ``/proc`` once it exits unreaped by us.
    """
    tick = os.sysconf("SC_CLK_TCK")
    main = children = 0
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = _stat_fields(pid)
        main = int(fields[11]) + int(fields[12])  # utime, stime
        children = int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
    for child in descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(child)
            children += int(fields[11]) + int(fields[12])
    return main / tick, children / tick


@dataclass(frozen=True)
class RedisCpu:
    """A reading of the Redis server's CPU: in total, and executing each command (seconds)."""

    total: float
    commands: dict[str, float]

    @classmethod
    def read(cls, client: Any) -> RedisCpu:
        """``INFO cpu`` and ``INFO commandstats`` through a redis-py client."""
        cpu = client.info("cpu")
        stats = client.info("commandstats")
        commands = {
            name.removeprefix("cmdstat_"): float(values["usec"]) / MICRO
            for name, values in stats.items()
        }
        return cls(float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), commands)

    def since(self, before: RedisCpu) -> RedisCpu:
        """What was used between ``before`` and this reading."""
        commands = {
            name: seconds - before.commands.get(name, 0.0)
            for name, seconds in self.commands.items()
            if seconds > before.commands.get(name, 0.0)
        }
        return RedisCpu(self.total - before.total, commands)


@dataclass(frozen=True)
class CpuSample:
    """One run's CPU, in microseconds per task."""

    main: float
    children: float
    redis: float | None = None  # None: no Redis in this suite
    commands: Mapping[str, float] | None = None

    @classmethod
    def of(
        cls, tasks: int, worker: tuple[float, float], redis: RedisCpu | None = None
    ) -> CpuSample:
        """Per-task figures from a worker's (main, children) seconds and Redis's usage."""
        per_task = MICRO / tasks
        if redis is None:
            return cls(worker[0] * per_task, worker[1] * per_task)
        commands = {name: seconds * per_task for name, seconds in redis.commands.items()}
        return cls(worker[0] * per_task, worker[1] * per_task, redis.total * per_task, commands)

    @property
    def total(self) -> float:
        """Main process, children and Redis together."""
        return self.main + self.children + (self.redis or 0.0)


def rows(samples: Mapping[str, Sequence[CpuSample]]) -> list[Row]:
    """Rows of µs per task, a column per peer: main, children, Redis and its top commands."""
    label = "  CPU per task: {} (µs, lower is better)"
    result = [
        Row(label.format("main process"), {p: [s.main for s in v] for p, v in samples.items()}),
        Row(
            label.format("children (celeriac: pool and events process)"),
            {p: [s.children for s in v] for p, v in samples.items()},
        ),
    ]
    if not any(s.redis is not None for v in samples.values() for s in v):
        return result
    result.append(
        Row(
            label.format("Redis server"),
            {p: [s.redis or 0.0 for s in v] for p, v in samples.items()},
        )
    )
    result.append(
        Row(label.format("all together"), {p: [s.total for s in v] for p, v in samples.items()})
    )
    for command in top_commands(samples):
        per_peer = {
            p: [(s.commands or {}).get(command, 0.0) for s in v] for p, v in samples.items()
        }
        label = f"    of which Redis executing {command.upper()} (µs)"
        result.append(Row(label, per_peer, digits=1, ratios=False))
    return result


def top_commands(samples: Mapping[str, Sequence[CpuSample]]) -> list[str]:
    """Each peer's ``TOP_COMMANDS`` costliest commands (by median), costliest first overall."""
    chosen: dict[str, float] = {}
    for runs in samples.values():
        names = {name for run in runs for name in (run.commands or {})}
        medians = {
            name: statistics.median((run.commands or {}).get(name, 0.0) for run in runs)
            for name in names
        }
        for name in sorted(medians, key=medians.__getitem__, reverse=True)[:TOP_COMMANDS]:
            chosen[name] = max(chosen.get(name, 0.0), medians[name])
    return sorted(chosen, key=chosen.__getitem__, reverse=True)
