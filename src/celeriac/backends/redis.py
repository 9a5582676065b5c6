"""Results in Redis: one string per task, expired by Redis's TTL, handed to waiting clients.

A record is stored as ``<expires at>\\n<state>\\n<header JSON>\\n<payload>`` under
``result:<task id>`` (key names: ``celeriac/_redis/keys.py``), with a Redis TTL of
``result_expires``. ``store.lua`` keeps the first final state.

Waiting uses no pub/sub and no poll. ``wait()`` sends, in one write on its thread's own
connection, ``SADD waiting:<id> <client>``, ``check.lua`` (which pushes the record to
``reply:<id>`` if it is already final) and ``BLPOP reply:<id>``; ``store.lua`` pushes a copy of
each final record to ``reply:<id>`` for every member of ``waiting:<id>``. Redis runs one
client's commands in order, so a result stored before the client said it waits is found by the
check, and one stored after is pushed to it: a ``get()`` is woken the moment its result lands.
Each ``BLPOP`` lasts two seconds at most (less with a short socket timeout); then ``wait()``
says again that it waits, in the same one write. Each of those steps gives up after
``socket_timeout``, and the whole wait by its timeout (plus ``REPLY_GRACE``), so a frozen Redis
cannot hold ``get(timeout=...)`` longer.

The expiry time is also written into the value, and reads compare it with the backend's clock:
the two agree in production (the clock is Redis's, see ``RedisClock``) and let tests move time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from celeriac._redis.connect import RedisOptions, as_bytes, flags_of, script_now
from celeriac._redis.database import open_database
from celeriac._redis.keys import BackendKeys, glob_escape
from celeriac._redis.scripts import Arg, Command
from celeriac.backends.base import Clock, ResultBackend, ResultRecord
from celeriac.backends.redis_history import RedisHistory
from celeriac.exceptions import BackendError
from celeriac.serialization import parse_json

log = logging.getLogger("celeriac.backends.redis")

CHUNK = 500  # records or keys per command, so that one call never blocks Redis long
SCAN_COUNT = 1000
REPLY_GRACE = 0.25  # seconds a wait gives Redis's reply past its timeout (a BLPOP ends then)


def _record_header(record: ResultRecord) -> bytes:
    """The JSON line of a stored record. By orjson: compact and UTF-8 where ``json.dumps``
    wrote ``", "`` and ``\\uXXXX``; either reads the other's as the same values (the fields
    are celeriac's own: strings, a time, a count, ids). ``json.dumps`` for what orjson refuses.
    """
    header = {
        "c": record.content_type,
        "d": record.date_done,
        "n": record.retries,
        "m": record.meta,
    }
    try:
        return orjson.dumps(header)
    except TypeError:
        return json.dumps(header).encode()


class RedisBackend(ResultBackend):
    """A result backend on Redis; see the module docstring.

    ``clock`` is for tests: when given, scripts use its time instead of Redis's.
    """

    def __init__(
        self, url: str, options: RedisOptions | None = None, *, clock: Clock | None = None
    ) -> None:
        self.db = open_database(url, options or RedisOptions())
        super().__init__(clock=clock or self.db.clock)
        self._test_clock = clock
        self.url = self.db.url
        self.keys = BackendKeys(self.db.options.global_keyprefix)
        self._store = self.db.script("celeriac.backends", "store")
        self._add = self.db.script("celeriac.backends", "add_to_set")
        self._cleanup = self.db.script("celeriac.backends", "cleanup")
        self._check = self.db.script("celeriac.backends", "check")
        # Each BLPOP must end well within the socket timeout, or redis-py calls Redis dead.
        self._block_slice = max(0.05, min(2.0, self.db.options.socket_timeout / 2))
        self._waiter = uuid.uuid4().hex  # this client's name in waiting:<id>
        self.history = RedisHistory(self.db, self.keys.base, self._now, lambda: self.clock())

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return self.db.errors(what, BackendError)

    def _now(self) -> str:
        return script_now(self._test_clock)

    def _live(self, expiry: bytes) -> bool:
        return not expiry or float(expiry) > self.clock()

    def _decode(self, task_id: str, raw: object) -> ResultRecord | None:
        """The record in ``raw``, or None when there is none or it has expired."""
        if raw is None:
            return None
        try:
            expiry, state, header, payload = as_bytes(raw).split(b"\n", 3)
            if not self._live(expiry):
                return None
            fields = parse_json(header)
            return ResultRecord(
                task_id=task_id,
                state=state.decode(),
                payload=payload,
                content_type=str(fields["c"]),
                date_done=fields["d"],
                retries=int(fields["n"]),
                meta=dict(fields["m"]),
            )
        except (ValueError, KeyError, TypeError):
            # A damaged record reads as none (the store scripts replace it as not final).
            log.warning("the result record of %s is damaged in Redis: read as none", task_id)
            return None

    # -- records ---------------------------------------------------------------------------------
    def store_many(self, records: Sequence[ResultRecord], *, expires: float | None) -> list[bool]:
        """Store records, first final state wins; see :meth:`ResultBackend.store_many`.

        Raises:
            BackendError: Redis cannot be reached.
        """
        ttl = "" if expires is None else repr(float(expires))
        flags: list[bool] = []
        with self._errors("store"):
            for start in range(0, len(records), CHUNK):
                chunk = records[start : start + CHUNK]
                args: list[Arg] = [self._now(), ttl]
                for r in chunk:
                    args += [r.state, _record_header(r) + b"\n" + r.payload]
                keys = [k for r in chunk for k in self._record_keys(r.task_id)]
                # Inside a broker batch on this server, sent with the batch: see _redis/database.py.
                if self.db.defer(self._store, keys, args, _log_refusals(chunk)):
                    flags += [True] * len(chunk)
                else:
                    reply = self.db.run(self._store, keys, args)
                    flags += flags_of(reply)
        return flags

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """The records that exist; see :meth:`ResultBackend.get_many`.

        Raises:
            BackendError: Redis cannot be reached.
        """
        ids = list(dict.fromkeys(task_ids))
        found: dict[str, ResultRecord] = {}
        with self._errors("get"):
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                command = ("MGET", *[self.keys.result(t) for t in chunk])
                values = self.db.direct_execute([command])[0]
                for task_id, raw in zip(chunk, values, strict=True):
                    if (record := self._decode(task_id, raw)) is not None:
                        found[task_id] = record
        return found

    def get(self, task_id: str) -> ResultRecord | None:
        """The record of one task (one ``GET``); see :meth:`ResultBackend.get`.

        Raises:
            BackendError: Redis cannot be reached.
        """
        with self._errors("get"):
            raw = self.db.direct_execute([("GET", self.keys.result(task_id))])[0]
            return self._decode(task_id, raw)

    def _record_keys(self, task_id: str) -> tuple[str, str, str]:
        keys = self.keys
        return keys.result(task_id), keys.waiting(task_id), keys.reply(task_id)

    def wait(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        """Wait for a final state, handed over by the store; see :meth:`ResultBackend.wait`.

        Raises:
            BackendError: Redis cannot be reached.
        """
        if timeout is not None and timeout <= 0:
            return self.get(task_id)
        until = None if timeout is None else time.monotonic() + timeout
        key, waiting, reply = self._record_keys(task_id)
        deadline = (
            contextlib.nullcontext() if until is None else self.db.deadline(until + REPLY_GRACE)
        )
        with self._errors("wait"), deadline:
            while True:
                remaining = self._block_slice if until is None else until - time.monotonic()
                if remaining <= 0:
                    return self.get(task_id)
                pause = min(remaining, self._block_slice)
                # One write, one round trip (see the module docstring). The waiting entry
                # outlives the BLPOP, so that a store just after its end still pushes a copy.
                commands: list[Command] = [
                    ("SADD", waiting, self._waiter),
                    ("PEXPIRE", waiting, int((pause + 5) * 1000)),
                    # With its source: a NOSCRIPT would be answered after the BLPOP blocked.
                    self._check.eval_command([key, reply], [self._now()]),
                    ("BLPOP", reply, pause),
                ]
                pushed = self.db.direct_execute(commands)[-1]
                if pushed is not None:
                    record = self._decode(task_id, pushed[1])
                    if record is not None and record.ready:
                        return record

    def forget(self, task_ids: Sequence[str]) -> None:
        """Delete records; see :meth:`ResultBackend.forget`.

        Raises:
            BackendError: Redis cannot be reached.
        """
        with self._errors("forget"):
            for start in range(0, len(task_ids), CHUNK):
                self.db.direct().delete(
                    *[self.keys.result(t) for t in task_ids[start : start + CHUNK]]
                )

    # -- workflow state --------------------------------------------------------------------------
    def add_to_set(self, key: str, member: str, *, expires: float | None) -> int:
        """Add to a set and count it, atomically; see :meth:`ResultBackend.add_to_set`.

        Raises:
            BackendError: Redis cannot be reached.
        """
        ttl = "" if expires is None else repr(float(expires))
        keys = [self.keys.set(key), self.keys.set_expiry(key)]
        with self._errors("add to a set"):
            return int(self.db.run(self._add, keys, [self._now(), member, ttl]))

    def set_members(self, key: str) -> set[str]:
        """Members of a set; see :meth:`ResultBackend.set_members`.

        Raises:
            BackendError: Redis cannot be reached.
        """
        with self._errors("read a set"), self.db.direct().pipeline(True) as pipe:
            pipe.get(self.keys.set_expiry(key))
            pipe.smembers(self.keys.set(key))
            expiry, members = pipe.execute()
        if expiry is None or not self._live(as_bytes(expiry)):
            return set()
        return {as_bytes(m).decode() for m in members}

    def put_document(self, key: str, document: dict[str, Any], *, expires: float | None) -> None:
        """Store a document; see :meth:`ResultBackend.put_document`.

        Raises:
            BackendError: Redis cannot be reached.
        """
        expiry = "" if expires is None else f"{self.clock() + expires:.6f}"
        value = f"{expiry}\n{json.dumps(document)}"
        with self._errors("store a document"):
            client = self.db.direct()
            if expires is None:
                client.set(self.keys.document(key), value)
            else:
                client.set(self.keys.document(key), value, px=max(1, int(expires * 1000)))

    def get_document(self, key: str) -> dict[str, Any] | None:
        """Read a document; see :meth:`ResultBackend.get_document`.

        Raises:
            BackendError: Redis cannot be reached.
        """
        with self._errors("read a document"):
            raw = self.db.direct().get(self.keys.document(key))
        if raw is None:
            return None
        expiry, _, text = as_bytes(raw).partition(b"\n")
        document: dict[str, Any] = json.loads(text)
        return document if self._live(expiry) else None

    def cleanup(self) -> int:
        """Delete what has expired by this backend's clock (Redis's TTLs normally did already);
        see :meth:`ResultBackend.cleanup`. It scans the keys of this prefix.

        Raises:
            BackendError: Redis cannot be reached.
        """
        keys = self.keys
        pattern = glob_escape(keys.base) + "*"
        removed = 0
        with self._errors("cleanup"):
            pairs: list[str] = []
            for raw in self.db.direct().scan_iter(match=pattern, count=SCAN_COUNT):
                name = as_bytes(raw).decode()
                if name.startswith((keys.result_prefix, keys.document_prefix)):
                    pairs += [name, name]
                elif name.startswith(keys.set_expiry_prefix):
                    pairs += [name, keys.set(name.removeprefix(keys.set_expiry_prefix))]
                if len(pairs) >= 2 * CHUNK:
                    removed += int(self.db.run(self._cleanup, pairs, [self._now()]))
                    pairs = []
            if pairs:
                removed += int(self.db.run(self._cleanup, pairs, [self._now()]))
        return removed

    def close(self) -> None:
        """Close this backend's connections; the next call reconnects."""
        self.db.disconnect()

    # -- from asyncio code: on redis-py's asyncio client (backends/redis_async.py) ------------
    async def await_result(self, task_id: str, timeout: float | None) -> ResultRecord | None:
        """:meth:`wait` from a coroutine; see :meth:`ResultBackend.await_result`.

        Raises:
            BackendError: Redis cannot be reached.
        """
        from celeriac.backends.redis_async import await_result

        return await await_result(self, task_id, timeout)

    async def aput_document(
        self, key: str, document: dict[str, Any], *, expires: float | None
    ) -> None:
        """:meth:`put_document` from a coroutine; see :meth:`ResultBackend.aput_document`.

        Raises:
            BackendError: Redis cannot be reached.
        """
        from celeriac.backends.redis_async import put_document

        await put_document(self, key, document, expires=expires)


def _log_refusals(records: Sequence[ResultRecord]) -> Any:
    """What to do with the flags of a batched store: say which results were not stored."""

    def check(reply: Any) -> None:
        for record, stored in zip(records, flags_of(reply), strict=True):
            if not stored:
                log.info(
                    "result of task %s not stored: it already had a final state", record.task_id
                )

    return check
