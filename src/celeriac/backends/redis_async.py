"""The Redis backend from asyncio code: ``RedisBackend.await_result`` and ``aput_document``.

The wait is the thread side's (``backends/redis.py``): in one write, ``SADD waiting:<id>``,
``PEXPIRE``, ``check.lua`` (with its source: a ``NOSCRIPT`` would be answered after the
``BLPOP`` blocked) and ``BLPOP reply:<id>``, so the coroutine is woken the moment the worker's
``store.lua`` pushes the record, and a record stored before it said it waits is found by the
check. Each ``BLPOP`` lasts ``_block_slice`` seconds at most; then it says again that it waits.
The commands go in one write on a connection the running loop lends to the waiting coroutine
(``_redis/async_connect.py``): many coroutines may wait at once, each on its own connection,
none blocking the loop; reads and documents go down the loop's one shared connection.

Each wait is its own waiter in ``waiting:<id>`` (the thread side names one per backend): two
coroutines awaiting the same task are each pushed a copy. Errors are the thread side's:
``BackendError`` when Redis cannot be reached, or does not answer within the timeout plus
``REPLY_GRACE`` (and each round trip within ``socket_timeout``).

Kept in its own module so that a process that never awaits never imports ``redis.asyncio``; it
is a part of ``RedisBackend`` and reads its keys, scripts and record decoding.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from celeriac._redis.async_connect import LoopLinks, links_for, raise_errors
from celeriac._redis.connect import RedisError
from celeriac._redis.scripts import Arg, Command
from celeriac.backends.base import ResultBackend, ResultRecord
from celeriac.exceptions import BackendError

if TYPE_CHECKING:
    from celeriac.backends.redis import RedisBackend

REPLY_GRACE = 0.25  # as the thread side's: seconds a wait gives Redis's reply past its timeout


@asynccontextmanager
async def _errors(backend: RedisBackend, what: str) -> AsyncIterator[None]:
    """Turn redis-py's errors (and a deadline that passed) into ``BackendError``."""
    try:
        yield
    except (RedisError, TimeoutError) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise BackendError(f"Redis at {backend.url}: {what} failed: {detail}") from exc


async def _links(backend: RedisBackend) -> LoopLinks | None:
    """The running loop's links to the server (None: a Sentinel URL), after reading Redis's
    clock if it is due (once a minute, in a thread: the readings of expiry times on the loop
    then never wait)."""
    if backend._test_clock is None and backend.db.clock.due():
        await asyncio.to_thread(backend.clock)
    server = links_for(backend.db)
    return None if server is None else await server.of_running_loop()


async def get(backend: RedisBackend, task_id: str) -> ResultRecord | None:
    """The record of one task (one ``GET``), or None.

    Raises:
        BackendError: Redis cannot be reached.
    """
    links = await _links(backend)
    if links is None:
        return await asyncio.to_thread(backend.get, task_id)
    async with _errors(backend, "get"):
        (raw,) = raise_errors(await links.run([("GET", backend.keys.result(task_id))]))
    return backend._decode(task_id, raw)


async def await_result(
    backend: RedisBackend, task_id: str, timeout: float | None
) -> ResultRecord | None:
    """Wait for a final state, handed over by the store; see the module docstring and
    ``ResultBackend.await_result``.

    Raises:
        BackendError: Redis cannot be reached.
    """
    links = await _links(backend)
    if links is None:  # a Sentinel URL: the base class's thread
        return await ResultBackend.await_result(backend, task_id, timeout)
    if timeout is not None and timeout <= 0:
        return await get(backend, task_id)
    loop = asyncio.get_running_loop()
    until = None if timeout is None else loop.time() + timeout
    waiter = uuid.uuid4().hex
    async with _errors(backend, "wait"):
        while True:
            remaining = backend._block_slice if until is None else until - loop.time()
            if remaining <= 0:
                break
            pushed = await _wait_once(backend, links, task_id, waiter, remaining, until)
            if pushed is not None:
                record = backend._decode(task_id, pushed[1])
                if record is not None and record.ready:
                    return record
    return await get(backend, task_id)


async def _wait_once(
    backend: RedisBackend,
    links: LoopLinks,
    task_id: str,
    waiter: str,
    remaining: float,
    until: float | None,
) -> Any:
    """One round trip of the wait: say it waits, check, block up to a slice (see the module
    docstring); the ``BLPOP``'s reply (None: nothing came). The replies are due within
    ``socket_timeout`` (the slice is at most half of it), and by ``until`` plus
    ``REPLY_GRACE`` when the wait has a timeout."""
    key, waiting, reply = backend._record_keys(task_id)
    pause = min(remaining, backend._block_slice)
    commands: list[Command] = [
        ("SADD", waiting, waiter),
        ("PEXPIRE", waiting, int((pause + 5) * 1000)),
        # With its source: a NOSCRIPT would be answered after the BLPOP blocked.
        backend._check.eval_command([key, reply], [backend._now()]),
        ("BLPOP", reply, pause),
    ]
    due = asyncio.get_running_loop().time() + backend.db.options.socket_timeout
    if until is not None:
        due = min(due, until + REPLY_GRACE)
    return raise_errors(await links.run_blocking(commands, due))[-1]


async def put_document(
    backend: RedisBackend, key: str, document: dict[str, Any], *, expires: float | None
) -> None:
    """Store a document as ``RedisBackend.put_document`` does, from a coroutine.

    Raises:
        BackendError: Redis cannot be reached.
    """
    links = await _links(backend)
    if links is None:
        await asyncio.to_thread(backend.put_document, key, document, expires=expires)
        return
    expiry = "" if expires is None else f"{backend.clock() + expires:.6f}"
    value = f"{expiry}\n{json.dumps(document)}"
    command: list[Arg] = ["SET", backend.keys.document(key), value]
    if expires is not None:
        command += ["PX", max(1, int(expires * 1000))]
    async with _errors(backend, "store a document"):
        raise_errors(await links.run([tuple(command)]))
