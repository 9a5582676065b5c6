"""The Redis broker's publish from asyncio code: ``RedisBroker.apublish_many`` and
``apublish_retrying``.

The same ``publish.lua``, by SHA (``EVALSHA``, sent again with its source when Redis answers
``NOSCRIPT``), with the same keys and arguments as ``RedisBroker._send``, on the running loop's
shared connection (``_redis/async_connect.py``); a publish of more than ``CHUNK``
messages goes in one ``MULTI``/``EXEC`` with the source, as the thread side does. Errors are
the thread side's: it keeps trying while Redis is unreachable (with backoff, or the pauses of
a ``retry_policy``), within ``broker_publish_timeout``, then raises ``PublishError``; a refused
password or a refused script fails at once.

Kept in its own module so that a process that never publishes from a coroutine never imports
``redis.asyncio``; it is a part of ``RedisBroker`` and reads its keys and scripts.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from celeriac._redis.async_connect import LoopLinks, links_for, raise_errors
from celeriac._redis.connect import REFUSED, TRANSIENT, RedisError, redis
from celeriac._redis.scripts import Arg, Command, LuaScript
from celeriac.exceptions import PublishError
from celeriac.message import Message

if TYPE_CHECKING:
    from celeriac.brokers.redis import RedisBroker

CHUNK = 500  # as RedisBroker's: messages per script call


def _backoff() -> Iterator[float]:
    """The thread side's pauses between tries: 0.05 s doubling to 1 s, without end."""
    return itertools.chain((0.05 * 2**n for n in range(5)), itertools.repeat(1.0))


def publish_commands(broker: RedisBroker, messages: Sequence[Message]) -> list[Command]:
    """The commands that enqueue ``messages``: one ``EVALSHA`` of ``publish.lua``, or, past
    ``CHUNK`` messages, a ``MULTI`` of ``EVAL``s (the layout of ``RedisBroker._send``)."""
    keys = broker.keys
    script = broker.db.script("celeriac.brokers", "publish")
    queues = list(dict.fromkeys(m.queue for m in messages))
    number = {queue: n for n, queue in enumerate(queues, 1)}
    script_keys = [keys.seq, keys.messages, keys.once("")]
    script_keys += [key for queue in queues for key in keys.queue_keys(queue)]
    head: list[Arg] = [broker._now(), ""]
    bodies: list[Arg] = []
    for m in messages:
        eta = "" if m.eta is None else repr(float(m.eta))
        bodies += [number[m.queue], m.priority, eta, m.encode()]
    if len(messages) <= CHUNK:
        return [script.command(script_keys, head + bodies)]
    chunks = [
        script.eval_command(script_keys, head + bodies[start : start + CHUNK * 4])
        for start in range(0, len(bodies), CHUNK * 4)
    ]
    return [("MULTI",), *chunks, ("EXEC",)]


async def _run(links: LoopLinks, script: LuaScript, commands: list[Command], until: float) -> None:
    """Send the commands (by ``until``, loop time); an ``EVALSHA`` that Redis lost is sent
    again with its source.

    Raises:
        redis.RedisError: Redis failed or refused the call, or did not answer in time.
    """
    if len(commands) == 1:
        (reply,) = await links.run(commands, until)
        if isinstance(reply, redis.exceptions.NoScriptError):
            command = commands[0]
            raise_errors(await links.run([("EVAL", script.source, *command[2:])], until))
            return
        raise_errors([reply])
        return
    replies = raise_errors(await links.run(commands, until))  # MULTI, the chunks, EXEC
    if replies[-1] is None:
        raise redis.exceptions.ResponseError("the transaction was aborted")


async def publish(
    broker: RedisBroker, messages: Sequence[Message], pauses: Iterator[float] | None
) -> None:
    """Enqueue ``messages`` from a coroutine; see the module docstring. ``pauses``: a retry
    policy's pauses between tries (None: the built-in backoff).

    Raises:
        PublishError: Redis refused them, or did not take them within ``publish_timeout``.
    """
    if not messages:
        return
    server = links_for(broker.db)
    if server is None:  # a Sentinel URL: the thread side finds the master
        await asyncio.to_thread(broker.publish_many, messages)
        return
    links = await server.of_running_loop()
    script = broker.db.script("celeriac.brokers", "publish")
    commands = publish_commands(broker, messages)
    loop = asyncio.get_running_loop()
    first = loop.time()
    deadline = first + broker.publish_timeout
    pauses = pauses if pauses is not None else _backoff()
    while True:
        try:
            await _run(links, script, commands, deadline)
            return
        except REFUSED as exc:
            raise PublishError(_failure(broker, "refused the connection", exc)) from exc
        except (*TRANSIENT, TimeoutError) as exc:
            now = loop.time()
            pause = next(pauses, None)
            if pause is None or now + pause >= deadline:
                tried = f"tried for {now - first:.1f}s"
                limit = f"broker_publish_timeout={broker.publish_timeout:g}s"
                what = f"unreachable ({tried}, {limit})"
                raise PublishError(_failure(broker, what, exc)) from exc
        except RedisError as exc:
            raise PublishError(_failure(broker, "refused it", exc)) from exc
        await asyncio.sleep(pause)


def _failure(broker: RedisBroker, what: str, exc: BaseException) -> str:
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"task not enqueued: Redis at {broker.url} {what}: {detail}"


async def read_clock(broker: RedisBroker) -> None:
    """Read Redis's clock when it is due (once a minute: ``RedisClock``), in a thread: the
    next ``broker.clock()``, made while building a message on the loop, then waits on nothing.
    """
    if broker._test_clock is None and broker.db.clock.due():
        await asyncio.to_thread(broker.clock)
