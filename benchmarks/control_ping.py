"""How long ``app.control.ping`` takes to come back from one worker, idle and busy.

Run: ``.venv/bin/python -m benchmarks.control_ping [pings] [tasks] [url ...]`` (default 30 pings,
20,000 no-op tasks, a fresh SQLite file; give a Redis URL of an empty database for Redis too).
The worker (``-c 2``, prefork) reads control commands every 0.2 s while idle and while busy;
this prints the round trip of a ping to it by name (the client stops at the first answer),
first idle, then while it works through the tasks, and the ratio busy / idle of the medians.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import APPS_DIR, WorkerProcess, percentile
from celeriac import Celeriac, group

NODE = "bench@ping"
BIN = Path(sys.executable).parent


def _pings(app: Celeriac, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        answer = app.control.ping(destination=[NODE], timeout=5.0)
        times.append(time.perf_counter() - started)
        if not answer:
            raise SystemExit(f"no answer from {NODE} within 5 s")
    return times


def _line(label: str, times: list[float]) -> str:
    return (
        f"  {label:<5} median {statistics.median(times) * 1000:6.1f} ms"
        f"  p90 {percentile(times, 90) * 1000:6.1f} ms  max {max(times) * 1000:6.1f} ms"
    )


def measure(url: str, pings: int, tasks: int, workdir: Path) -> None:
    """Print the ping round trips on ``url``, idle then busy."""
    env = dict(os.environ, CELERIAC_BROKER_URL=url)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APPS_DIR), env.get("PYTHONPATH")]))
    command = [str(BIN / "celeriac"), "-A", "celeriac_app", "-q", "worker", "-c", "2", "-n", NODE]
    app = Celeriac("client", broker=url)
    worker = WorkerProcess("celeriac", command, env=env, log_path=workdir / "worker.log")
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not app.control.ping(destination=[NODE], timeout=0.5):
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker did not answer:\n{worker.log_tail()}")
        idle = _pings(app, pings)
        group(app.signature("celeriac_app.noop") for _ in range(tasks)).apply_async()
        busy = _pings(app, pings)
        left = app.broker.queue_lengths(["celeriac"])["celeriac"]
    finally:
        worker.stop()
        app.close()
    print(f"{url.split(':')[0]}: {pings} pings, {tasks} tasks ({left} still queued at the end)")
    print(_line("idle", idle))
    print(_line("busy", busy))
    print(f"  busy / idle (medians): {statistics.median(busy) / statistics.median(idle):.2f}")


def main() -> None:
    pings = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        urls = sys.argv[3:] or [f"sqlite:///{Path(tmp) / 'ping.db'}"]
        for url in urls:
            measure(url, pings, tasks, Path(tmp))


if __name__ == "__main__":
    main()
