"""One run of the asyncio suite for one peer: ``python aio_driver.py PEER TASKS SECONDS``.

Run by ``benchmarks/asyncio_suite.py`` with the Python that has the peer installed (arq, SAQ and
Taskiq pin an older redis-py than celeriac's, so they live in a virtualenv of their own), in
this folder, with ``$BENCH_REDIS_URL`` and ``$BENCH_CONCURRENCY`` set. It flushes the database,
starts the peer's worker, waits for one task's result (the worker is warm), then sends ``TASKS``
calls of a task that awaits ``SECONDS`` (Celery: sleeps in a thread) and waits until every
result is stored (checked every ``POLL`` seconds, straight from Redis). It prints one JSON line:
the seconds from the first send to the last result, and how many results never came (lost)
within ``TIMEOUT`` seconds, or did not come back as a success. The worker is then stopped and
the database flushed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
CONCURRENCY = os.environ.get("BENCH_CONCURRENCY", "100")
POLL = 0.01
TIMEOUT = 120.0
START_TIMEOUT = 60.0

COMMANDS = {
    "celeriac": [
        str(BIN / "celeriac"),
        "-A",
        "aio_celeriac_app",
        "worker",
        "-P",
        "asyncio",
        "-c",
        CONCURRENCY,
        "-l",
        "warning",
    ],
    "celery": [
        str(BIN / "celery"),
        "-A",
        "aio_celery_app",
        "worker",
        "-P",
        "threads",
        "-c",
        CONCURRENCY,
        "-l",
        "warning",
    ],
    "arq": [str(BIN / "arq"), "aio_arq_app.WorkerSettings"],
    "saq": [str(BIN / "saq"), "aio_saq_app.settings", "--workers", "1"],
    "taskiq": [
        str(BIN / "taskiq"),
        "worker",
        "aio_taskiq_app:broker",
        "--workers",
        "1",
        "--max-async-tasks",
        CONCURRENCY,
    ],
}


def _until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(POLL)
    return done()


def _stored(db: redis.Redis, keys: list[str]) -> Callable[[], bool]:
    """A check that every key in ``keys`` exists (each found once is not asked again)."""
    pending = list(keys)

    def check() -> bool:
        nonlocal pending
        pipe = db.pipeline(transaction=False)
        for key in pending:
            pipe.exists(key)
        pending = [k for k, found in zip(pending, pipe.execute(), strict=True) if not found]
        return not pending

    return check


# -- each peer: send, then a check that every result is stored, then count the successes -------
def _celeriac(tasks: int, seconds: float, db: redis.Redis) -> dict[str, Any]:
    from aio_celeriac_app import app  # type: ignore[import-not-found]

    from celeriac import group, states

    wait = app.tasks["aio_celeriac_app.wait"]
    wait.delay(0).get(timeout=START_TIMEOUT)
    started = time.perf_counter()
    ids = [r.id for r in group(wait.s(seconds) for _ in range(tasks)).apply_async().results]
    pending = list(ids)

    def check() -> bool:
        nonlocal pending
        records = app.backend.get_many(pending)
        pending = [
            i for i in pending if i not in records or records[i].state not in states.READY_STATES
        ]
        return not pending

    finished = _until(check, TIMEOUT)
    elapsed = time.perf_counter() - started
    records = app.backend.get_many(ids)
    ok = sum(1 for i in ids if i in records and records[i].state == states.SUCCESS)
    return {"seconds": elapsed, "finished": finished, "ok": ok}


def _celery(tasks: int, seconds: float, db: redis.Redis) -> dict[str, Any]:
    from aio_celery_app import app, wait  # type: ignore[import-not-found]
    from celery import group

    wait.delay(0).get(timeout=START_TIMEOUT)
    started = time.perf_counter()
    ids = [r.id for r in group(wait.s(seconds) for _ in range(tasks)).apply_async().results]
    finished = _until(_stored(db, [f"celery-task-meta-{i}" for i in ids]), TIMEOUT)
    elapsed = time.perf_counter() - started
    ok = sum(1 for i in ids if app.AsyncResult(i).state == "SUCCESS")
    return {"seconds": elapsed, "finished": finished, "ok": ok}


async def _arq(tasks: int, seconds: float, db: redis.Redis) -> dict[str, Any]:
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(RedisSettings.from_dsn(URL))
    first = await pool.enqueue_job("wait", 0)
    await first.result(timeout=START_TIMEOUT)
    started = time.perf_counter()
    jobs = await asyncio.gather(*(pool.enqueue_job("wait", seconds) for _ in range(tasks)))
    check = _stored(db, [f"arq:result:{job.job_id}" for job in jobs])
    finished = await asyncio.to_thread(_until, check, TIMEOUT)
    elapsed = time.perf_counter() - started
    infos = await asyncio.gather(*(job.result_info() for job in jobs))
    ok = sum(1 for info in infos if info is not None and info.success)
    await pool.aclose()
    return {"seconds": elapsed, "finished": finished, "ok": ok}


async def _saq(tasks: int, seconds: float, db: redis.Redis) -> dict[str, Any]:
    from aio_saq_app import queue  # type: ignore[import-not-found]
    from saq.job import Status

    await queue.connect()
    await queue.enqueue("wait", seconds=0)
    await asyncio.to_thread(_until, lambda: _saq_idle(db), START_TIMEOUT)
    started = time.perf_counter()
    jobs = await asyncio.gather(*(queue.enqueue("wait", seconds=seconds) for _ in range(tasks)))
    finished = await asyncio.to_thread(_until, lambda: _saq_idle(db), TIMEOUT)
    elapsed = time.perf_counter() - started
    for job in jobs:
        await job.refresh()
    ok = sum(1 for job in jobs if job.status == Status.COMPLETE)
    await queue.disconnect()
    return {"seconds": elapsed, "finished": finished, "ok": ok}


def _saq_idle(db: redis.Redis) -> bool:
    """SAQ's own count of jobs not finished (its ``incomplete`` sorted set) is zero."""
    return int(db.zcard("saq:default:incomplete")) == 0


async def _taskiq(tasks: int, seconds: float, db: redis.Redis) -> dict[str, Any]:
    from aio_taskiq_app import broker, wait  # type: ignore[import-not-found]

    await broker.startup()
    first = await wait.kiq(0)
    await first.wait_result(timeout=START_TIMEOUT)
    started = time.perf_counter()
    sent = await asyncio.gather(*(wait.kiq(seconds) for _ in range(tasks)))
    finished = await asyncio.to_thread(_until, _stored(db, [t.task_id for t in sent]), TIMEOUT)
    elapsed = time.perf_counter() - started
    results = await asyncio.gather(*(t.get_result() for t in sent))
    ok = sum(1 for r in results if not r.is_err)
    await broker.shutdown()
    return {"seconds": elapsed, "finished": finished, "ok": ok}


PEERS: dict[str, Callable[[int, float, redis.Redis], Any]] = {
    "celeriac": _celeriac,
    "celery": _celery,
    "arq": _arq,
    "saq": _saq,
    "taskiq": _taskiq,
}


def main() -> int:
    """Run the peer named on the command line; print the JSON line."""
    peer, tasks, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    db = redis.Redis.from_url(URL)
    db.flushdb()
    log = open(os.environ.get("BENCH_WORKER_LOG", os.devnull), "w")  # noqa: SIM115
    worker = subprocess.Popen(
        COMMANDS[peer], cwd=HERE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        run = PEERS[peer](tasks, seconds, db)
        if isinstance(run, Awaitable):
            run = asyncio.run(_awaited(run))
    finally:
        _stop(worker)
        log.close()
        db.flushdb()
    run.update(peer=peer, tasks=tasks, lost=tasks - run["ok"])
    print(json.dumps(run), flush=True)
    return 0


async def _awaited(run: Awaitable[Any]) -> Any:
    return await run


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker's process group; SIGKILL what is left after 10 s."""
    for signum, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(worker.pid, signum)
        except ProcessLookupError:
            return
        try:
            worker.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


if __name__ == "__main__":
    sys.exit(main())
