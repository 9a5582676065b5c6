"""The asyncio suite: ``async def`` tasks that wait on I/O, celeriac against the asyncio queues.

1,000 tasks that each ``await asyncio.sleep(0.1)``, at a concurrency of 100 (the ideal is about
1,000 tasks/s), every peer in its recommended setup with its results stored, on the same Redis:

- celeriac: ``celeriac -A aio_celeriac_app worker -P asyncio -c 100`` (one event loop; uvloop
  when installed), sent as one ``group``;
- SAQ: ``saq aio_saq_app.settings --workers 1``, ``concurrency`` 100;
- arq: ``arq aio_arq_app.WorkerSettings``, ``max_jobs`` 100 (its defaults otherwise);
- Taskiq: ``taskiq worker aio_taskiq_app:broker --workers 1 --max-async-tasks 100``, a
  ``ListQueueBroker`` with the ``RedisAsyncResultBackend`` (taskiq-redis);
- Celery: ``celery -A aio_celery_app worker -P threads -c 100`` (Celery runs no coroutines:
  the task sleeps in its thread), sent as one ``group``.

The asyncio peers send with ``asyncio.gather`` of their own enqueue call. arq, SAQ and Taskiq
pin an older redis-py than celeriac's, so they are run from a virtualenv of their own:
``$BENCH_PEERS_PYTHON`` (its ``python``); a peer found in neither is left out, with a note.

Each run (``benchmarks/apps/aio_driver.py``) flushes the database, starts the worker, waits for
one task (warm), then measures from the first send to the last result stored (read straight
from Redis every 10 ms), and counts the tasks lost: results missing after 120 s, or not a
success. The peers are interleaved, in a new order each repetition (``--repeat``, default 3).
The database is ``$BENCH_REDIS_URL`` (default db 12 of 127.0.0.1:6379, as the Redis suite); it
must be empty at the start, and is flushed after every run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

from benchmarks.common import APPS_DIR, BenchmarkError, Report, Row, RunOptions

URL_ENV, PEERS_ENV = "BENCH_REDIS_URL", "BENCH_PEERS_PYTHON"
DEFAULT_URL = "redis://127.0.0.1:6379/12"
DEFAULT_TASKS, SLEEP, CONCURRENCY = 1_000, 0.1, 100
PEERS = ("celeriac", "saq", "arq", "taskiq", "celery")
PACKAGES = {"celeriac": "celeriac", "saq": "saq", "arq": "arq", "taskiq": "taskiq_redis"}
DISTRIBUTIONS = {"saq": "saq", "arq": "arq", "taskiq": "taskiq", "celery": "celery"}
RUN_TIMEOUT = 300.0


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _python_for(peer: str) -> str | None:
    """The interpreter that has ``peer`` installed: this one, else ``$BENCH_PEERS_PYTHON``."""
    if find_spec(PACKAGES.get(peer, peer)) is not None:
        return sys.executable
    other = os.environ.get(PEERS_ENV)
    if not other:
        return None
    probe = [other, "-c", f"import {PACKAGES.get(peer, peer)}"]
    return other if subprocess.run(probe, capture_output=True).returncode == 0 else None


def _version(python: str, peer: str) -> str:
    if peer == "celeriac":
        return metadata.version("celeriac")
    code = f"import importlib.metadata as m; print(m.version({DISTRIBUTIONS[peer]!r}))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def _one_run(python: str, peer: str, tasks: int, workdir: Path, url: str) -> dict[str, float]:
    """One measured run of ``peer``; see the module docstring.

    Raises:
        BenchmarkError: the driver failed or hung; the message holds the worker's log.
    """
    log = workdir / f"aio-{peer}.log"
    env = dict(os.environ, BENCH_REDIS_URL=url, BENCH_CONCURRENCY=str(CONCURRENCY))
    env["BENCH_WORKER_LOG"] = str(log)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APPS_DIR), env.get("PYTHONPATH")]))
    command = [python, str(APPS_DIR / "aio_driver.py"), peer, str(tasks), str(SLEEP)]
    try:
        done = subprocess.run(
            command, cwd=APPS_DIR, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"{peer} did not finish in {RUN_TIMEOUT:.0f}s") from exc
    if done.returncode != 0:
        tail = log.read_text()[-3000:] if log.exists() else ""
        raise BenchmarkError(f"{peer} failed:\n{done.stderr[-3000:]}\nworker log:\n{tail}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _empty(url: str) -> None:
    import redis

    db = redis.Redis.from_url(url)
    try:
        if db.dbsize():
            raise BenchmarkError(f"the Redis database {url} is not empty: flush it first")
    finally:
        db.close()


def run(options: RunOptions, workdir: Path) -> Report:
    """Every peer found, interleaved, ``options.repeat`` times; see the module docstring.

    Raises:
        BenchmarkError: Redis is not empty, or a peer failed or hung.
    """
    url = os.environ.get(URL_ENV, DEFAULT_URL)
    tasks = options.tasks if options.tasks != RunOptions.tasks else DEFAULT_TASKS
    _empty(url)
    pythons = {peer: _python_for(peer) for peer in PEERS}
    found = tuple(peer for peer in PEERS if pythons[peer] is not None)
    notes = [f"not installed here, left out: {p}" for p in PEERS if pythons[p] is None]
    rates: dict[str, list[float]] = {peer: [] for peer in found}
    lost: dict[str, list[float]] = {peer: [] for peer in found}
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    for repetition in range(options.repeat):
        shift = repetition % len(found)
        for peer in found[shift:] + found[:shift]:
            python = pythons[peer]
            assert python is not None
            result = _one_run(python, peer, tasks, workdir, url)
            rates[peer].append(tasks / result["seconds"])
            lost[peer].append(result["lost"])
            _progress(
                f"asyncio {repetition + 1}/{options.repeat} {peer}: "
                f"{rates[peer][-1]:.0f} tasks/s, {result['lost']:.0f} lost"
            )
    versions = {}
    for peer in found:
        python = pythons[peer]
        assert python is not None
        versions[peer] = _version(python, peer)
    return Report(
        title=f"asyncio: {tasks:,} x await asyncio.sleep({SLEEP}) at concurrency {CONCURRENCY}",
        peers=found,
        versions=versions,
        settings=[
            f"redis:   {url}, flushed before and after every run",
            f"load:    {load} (1, 5, 15 min) at the start",
            f"repeat:  {options.repeat}, peers interleaved, a new order each time",
            *notes,
        ],
        rows=[
            Row(f"tasks/s, first send to last result (ideal ~{CONCURRENCY / SLEEP:.0f})", rates),
            Row(f"tasks lost (of {tasks:,} a run)", lost, ratios=False),
        ],
    )
