"""What every benchmark suite shares: worker subprocesses, process-tree memory, the results table.

A suite runs each peer's real worker command in a subprocess (``WorkerProcess``), measures, and
returns a ``Report``: one ``Row`` per scenario with every repetition's sample for every peer.
``format_table`` and ``format_markdown`` print a report as medians, ranges and ratios.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

APPS_DIR = Path(__file__).resolve().parent / "apps"
STOP_GRACE = 5.0  # seconds a worker gets to exit on SIGTERM before everything is SIGKILLed
LOG_TAIL_LINES = 30


class BenchmarkError(Exception):
    """A peer crashed, hung or answered wrongly; the message says which and shows its log."""


@dataclass(frozen=True)
class RunOptions:
    """The command line's settings, shared by every suite."""

    repeat: int = 3
    tasks: int = 5_000
    calls: int = 300
    warmup_calls: int = 20


@dataclass(frozen=True)
class Row:
    """One scenario: every repetition's sample per peer, and how to show them."""

    scenario: str
    samples: dict[str, list[float]]
    digits: int = 0
    ratios: bool = True  # False where a ratio means nothing (a peer that barely uses a command)


@dataclass
class Report:
    """What a suite measured, and the settings a reader needs to judge it."""

    title: str
    peers: tuple[str, ...]  # the first is celeriac: every ratio is celeriac / another peer
    versions: dict[str, str]
    settings: list[str]
    rows: list[Row] = field(default_factory=list)


# -- worker subprocesses -----------------------------------------------------------------------
class WorkerProcess:
    """A peer's worker command in its own session, output to a log file; ``stop`` kills it all."""

    def __init__(
        self, name: str, command: Sequence[str], *, env: dict[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._seen: set[int] = set()

    def start(self) -> float:
        """Run the command; return the ``time.perf_counter()`` just before it was started.

        Raises:
            BenchmarkError: the command does not exist.
        """
        if not Path(self.command[0]).exists():
            raise BenchmarkError(f"{self.name}: {self.command[0]} not found (is it installed?)")
        with open(self.log_path, "ab") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=str(APPS_DIR),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() can reach every child
            )
        return started

    @property
    def pid(self) -> int:
        """The main process id."""
        assert self.process is not None, "not started"
        return self.process.pid

    def tree(self) -> list[int]:
        """The main process and all its descendants (remembered, so that ``stop`` kills them)."""
        pids = [self.pid, *descendants(self.pid)]
        self._seen.update(pids)
        return pids

    def check(self) -> None:
        """Raise if the worker has exited.

        Raises:
            BenchmarkError: it exited (its status and the end of its log are in the message).
        """
        if self.process is not None and self.process.poll() is not None:
            status = self.process.returncode
            tail = self.log_tail()
            raise BenchmarkError(f"{self.name} worker exited with status {status}\n{tail}")

    def log_tail(self) -> str:
        """The last lines the worker printed."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return f"(no log at {self.log_path})"
        tail = "\n".join(f"  | {line}" for line in lines[-LOG_TAIL_LINES:])
        return f"last lines of {self.log_path.name}:\n{tail or '  | (empty)'}"

    def stop(self) -> None:
        """SIGTERM the main process, then SIGKILL its group and every process seen in its tree."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.tree()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_GRACE)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in self._seen - {self.pid}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_GRACE)

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(
    condition: Callable[[], bool],
    worker: WorkerProcess,
    *,
    timeout: float,
    interval: float,
    what: str,
) -> float:
    """Poll ``condition`` until it holds; return the ``time.perf_counter()`` when it did.

    Raises:
        BenchmarkError: the worker exited, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.perf_counter()
        worker.check()
        if time.monotonic() >= deadline:
            raise BenchmarkError(
                f"{worker.name}: {what} did not happen within {timeout:.0f}s\n{worker.log_tail()}"
            )
        time.sleep(interval)


# -- memory --------------------------------------------------------------------------------------
def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: the fields start after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1])


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := _parent_of(int(entry.name))) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time these processes have used so far, in seconds."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def pss_kib(pids: Sequence[int]) -> int:
    """Proportional set size of these processes together, in KiB (shared pages counted once)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total


# -- statistics ----------------------------------------------------------------------------------
def percentile(samples: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) of the samples, interpolated between the nearest ranks."""
    ordered = sorted(samples)
    position = (len(ordered) - 1) * pct / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(samples: Sequence[float]) -> tuple[float, float, float]:
    """Median, minimum and maximum."""
    return statistics.median(samples), min(samples), max(samples)


# -- the header and the table ------------------------------------------------------------------
def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _filesystem(path: Path) -> str:
    """The type of the filesystem ``path`` is on (fsync costs differ: ext4, tmpfs, overlay...)."""
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mount = parts[1]
            inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, parts[2]
    return f"{kind} (mounted at {best or '?'})"


def compile_bytecode() -> str:
    """Byte-compile celeriac and the suites' apps where they are imported from; says what it did.

    Peers installed from wheels come with their byte code, compiled by pip. celeriac installed
    from a checkout (``pip install -e .``) has none until a process writes it, and a machine
    with ``PYTHONDONTWRITEBYTECODE=1`` (this one) never does: every worker start compiled each
    of celeriac's modules again, some 200 ms of a 450 ms start. Compiling once, as pip would,
    measures what a user runs. Files already compiled are left as they are.
    """
    import compileall

    import celeriac

    package = Path(celeriac.__file__).resolve().parent
    for folder in (package, APPS_DIR):
        compileall.compile_dir(folder, quiet=1)
    return f"bytecode: compiled beforehand ({package}, {APPS_DIR.name}/), as pip does"


def machine_header(workdir: Path) -> list[str]:
    """Lines describing this machine and run."""
    now = datetime.datetime.now().astimezone()
    return [
        f"date:    {now.isoformat(timespec='seconds')}",
        f"machine: {os.cpu_count()} CPUs, {_cpu_model()}, Linux {platform.release()}",
        f"python:  {platform.python_version()} ({platform.python_implementation()}),"
        f" SQLite {sqlite3.sqlite_version}",
        f"workdir: {workdir} on {_filesystem(workdir)}",
    ]


def _cell(samples: Sequence[float], digits: int) -> str:
    if not samples:
        return "-"
    median, low, high = summary(samples)
    return f"{median:.{digits}f} [{low:.{digits}f}-{high:.{digits}f}]"


def _ratio(row: Row, first: str, other: str) -> str:
    mine, theirs = row.samples.get(first, []), row.samples.get(other, [])
    if not mine or not theirs or statistics.median(theirs) == 0:
        return "-"
    return f"{statistics.median(mine) / statistics.median(theirs):.2f}x"


def _cells(report: Report) -> tuple[list[str], list[list[str]]]:
    first, *others = report.peers
    head = ["scenario", *(f"{peer} (median [min-max])" for peer in report.peers)]
    head += [f"{first}/{other}" for other in others]
    body = [
        [row.scenario]
        + [_cell(row.samples.get(peer, []), row.digits) for peer in report.peers]
        + [_ratio(row, first, other) if row.ratios else "-" for other in others]
        for row in report.rows
    ]
    return head, body


def _preamble(report: Report, machine: list[str]) -> list[str]:
    versions = ", ".join(f"{name} {version}" for name, version in report.versions.items())
    return [report.title, *machine, f"peers:   {versions}", *report.settings]


def format_table(report: Report, machine: list[str]) -> str:
    """The report as aligned plain text, under a header describing the machine and settings."""
    head, body = _cells(report)
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        cells = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        return "  ".join(cells).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([*_preamble(report, machine), "", line(head), rule, *map(line, body)])


def format_markdown(report: Report, machine: list[str]) -> str:
    """The report as a Markdown section: the header as a list, then the table."""
    head, body = _cells(report)
    bullets = [f"- {text}" for text in _preamble(report, machine)[1:]]
    rows = [head, ["---"] + ["---:"] * (len(head) - 1), *body]
    table = ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join([f"### {report.title}", "", *bullets, "", *table])
