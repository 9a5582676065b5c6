"""The embedded broker: one SQLite file shared by every worker and client on one machine.

No server to run. The schema and what each column means are in ``sqlite.sql`` beside this file;
the delivery design is in ``docs/design/delivery.md``. In short: a lease is a token and a
deadline written into the message's row; a fetch takes the best ready rows and writes a new token
and deadline into them in one ``UPDATE ... RETURNING`` inside a write transaction, so two
consumers can never take the same row; ack, extend and requeue match on ``(tag, token)``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence

from celeriac._sqlite.store import StoreFile
from celeriac.brokers.base import Broker, Clock, DeadLetter, Delivery
from celeriac.exceptions import BrokerError, PublishError
from celeriac.message import Message

PROMOTE_EVERY = 0.01  # seconds; a due delayed message waits at most this long in a busy queue

# The statements of a worker's every turn have one text whatever the batch's size (the batch is
# a JSON array, read by json_each), so that sqlite3's statement cache compiles each once.
_TAKE_ONE_QUEUE = (
    "UPDATE celeriac_messages SET token = ?, available_at = ?, attempt = attempt + 1"
    " WHERE tag IN (SELECT tag FROM celeriac_messages INDEXED BY celeriac_messages_order"
    " WHERE ready = 1 AND queue = ? AND available_at <= ? ORDER BY priority DESC, tag LIMIT ?)"
    " RETURNING tag, queue, body, attempt, priority"
)
_TAKE_TAGS = (
    "UPDATE celeriac_messages SET token = ?, available_at = ?, attempt = attempt + 1"
    " WHERE tag IN (SELECT value FROM json_each(?)) RETURNING tag, queue, body, attempt, priority"
)
_LEASED = "tag IN (SELECT value FROM json_each(?)) AND token = ?"  # settling: one fetch's tags


def _by_token(deliveries: Sequence[Delivery]) -> dict[str, str]:
    """The tags of ``deliveries`` as a JSON array per lease token (one token per fetch, so a
    worker's batch has a few)."""
    tags: dict[str, list[int]] = {}
    for d in deliveries:
        tags.setdefault(d.token, []).append(int(d.tag))
    return {token: json.dumps(group) for token, group in tags.items()}


def _dead_clause(tags: Sequence[str] | None) -> tuple[str, list[object]]:
    """The WHERE clause choosing dead letters by tag (every one when ``tags`` is None)."""
    if tags is None:
        return "", []
    return "WHERE tag IN (SELECT value FROM json_each(?))", [json.dumps(list(tags))]


class SqliteBroker(Broker):
    """A broker in a SQLite file; see the module docstring.

    ``publish_timeout`` bounds how long a publish waits for the file's lock (another process's
    transaction); everything else waits up to 30 s (``_sqlite/database.py`` says why).
    """

    def __init__(
        self, path: str, *, clock: Clock = time.time, publish_timeout: float = 10.0
    ) -> None:
        super().__init__(clock=clock)
        self.url = f"sqlite:///{path}"
        self.path = path
        self.publish_timeout = publish_timeout
        self._file = StoreFile(
            path, name="SQLite broker", schema_package="celeriac.brokers", error=BrokerError
        )
        self._promoted_at = float("-inf")

    @contextlib.contextmanager
    def _publishing(self, what: str) -> Iterator[sqlite3.Connection]:
        """A write transaction that waits for the lock no longer than ``publish_timeout``
        (opening the file included) and fails with ``PublishError``."""
        with (
            self._file.deadline(self.publish_timeout),
            self._file.errors(what, PublishError),
            self._file.open(PublishError).transaction() as conn,
        ):
            yield conn

    def publish_many(self, messages: Sequence[Message]) -> None:
        """Enqueue messages in one transaction; see :meth:`Broker.publish_many`.

        Raises:
            PublishError: the file stayed locked for ``publish_timeout``, or another error.
        """
        now = self.clock()
        rows = []
        for m in messages:
            delayed = m.eta is not None and m.eta > now
            available_at = m.eta if delayed else now
            rows.append((m.queue, m.priority, 0 if delayed else 1, available_at, m.encode()))
        with self._publishing("publish") as conn:
            conn.executemany(
                "INSERT INTO celeriac_messages (queue, priority, ready, available_at, body)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def publish_once(self, message: Message, key: str, *, ttl: float) -> bool:
        """Enqueue unless ``key`` was used within ``ttl``; see :meth:`Broker.publish_once`.

        Raises:
            PublishError: the file stayed locked for ``publish_timeout``, or another error.
        """
        now = self.clock()
        with self._publishing("publish") as conn:
            conn.execute("DELETE FROM celeriac_once WHERE key = ? AND expires_at <= ?", [key, now])
            cursor = conn.execute(
                "INSERT OR IGNORE INTO celeriac_once (key, expires_at) VALUES (?, ?)",
                [key, now + ttl],
            )
            if cursor.rowcount != 1:
                return False
            self.publish_many([message])
            return True

    def fetch(
        self, queues: Sequence[str], limit: int, *, lease: float, consumer: str, timeout: float
    ) -> list[Delivery]:
        """Lease ready messages, waiting up to ``timeout``; see :meth:`Broker.fetch`."""
        if limit < 1:
            return []  # nothing can be taken, and the loop below would never end
        until = time.monotonic() + timeout
        with self._file.errors("fetch"):
            # Optimistic first: while messages flow, a fetch is one transaction.
            taken = self._take(queues, limit, lease)
            if not taken and timeout <= 0:
                # Nothing to wait for (a worker's turn refilling its pool, inside its batch's
                # transaction): only delayed messages that came due may still be taken. Taking
                # them is two statements (promote, take); learning when to wake, below, five reads.
                return self._take(queues, limit, lease, promote=True)
            while not taken:
                version = self._file.db.data_version()
                next_ready = self._next_ready(queues)
                if next_ready is not None and next_ready <= self.clock():
                    taken = self._take(queues, limit, lease, promote=True)
                elif not self._file.db.wait_for_change(version, until, next_ready, self.clock):
                    return []
            return taken

    def _next_ready(self, queues: Sequence[str]) -> float | None:
        """When a message of ``queues`` can next be fetched (a past time: now), read-only."""
        now = self.clock()
        soonest: float | None = None
        for queue in queues:
            if self._file.db.read(
                "SELECT 1 FROM celeriac_messages WHERE ready = 1 AND queue = ?"
                " AND available_at <= ? LIMIT 1",
                [queue, now],
            ):
                return now
            # Nothing ready: every ready = 1 row of the queue is leased (few rows); the first
            # lease to run out is when one may come back.
            ((expiry,),) = self._file.db.read(
                "SELECT MIN(available_at) FROM celeriac_messages WHERE ready = 1 AND queue = ?",
                [queue],
            )
            if expiry is not None and (soonest is None or expiry < soonest):
                soonest = float(expiry)
        ((due,),) = self._file.db.read(
            "SELECT MIN(available_at) FROM celeriac_messages WHERE ready = 0"
        )
        if due is not None and (soonest is None or due < soonest):
            soonest = float(due)
        return soonest

    def _take(
        self, queues: Sequence[str], limit: int, lease: float, *, promote: bool = False
    ) -> list[Delivery]:
        token = secrets.token_hex(8)
        now = self.clock()
        with self._file.db.transaction() as conn:
            # Delayed messages that came due join the hand-out order; while messages flow this
            # is done every PROMOTE_EVERY seconds rather than on every fetch.
            if promote or now - self._promoted_at >= PROMOTE_EVERY:
                self._promoted_at = now
                conn.execute(
                    "UPDATE celeriac_messages SET ready = 1 WHERE ready = 0 AND available_at <= ?",
                    [now],
                )
            if len(queues) == 1:
                rows = conn.execute(
                    _TAKE_ONE_QUEUE, [token, now + lease, queues[0], now, limit]
                ).fetchall()
            else:
                tags = self._best(conn, queues, limit, now)
                if not tags:
                    return []
                rows = conn.execute(_TAKE_TAGS, [token, now + lease, json.dumps(tags)]).fetchall()
        rows.sort(key=lambda r: (-r[4], r[0]))
        return [
            Delivery(bytes(body), queue, str(tag), token, attempt)
            for tag, queue, body, attempt, _ in rows
        ]

    @staticmethod
    def _best(conn: sqlite3.Connection, queues: Sequence[str], limit: int, now: float) -> list[int]:
        """The tags of the ``limit`` best ready messages: one indexed, LIMITed scan per queue,
        merged here (one ``ORDER BY`` across queues would sort every ready row)."""
        candidates: list[tuple[int, int]] = []
        for queue in queues:
            candidates += conn.execute(
                "SELECT priority, tag FROM celeriac_messages INDEXED BY celeriac_messages_order"
                " WHERE ready = 1 AND queue = ? AND available_at <= ?"
                " ORDER BY priority DESC, tag LIMIT ?",
                [queue, now, limit],
            ).fetchall()
        if len(queues) > 1:
            candidates = sorted(candidates, key=lambda r: (-r[0], r[1]))[:limit]
        return [tag for _, tag in candidates]

    def _settle(self, sql: str, deliveries: Sequence[Delivery], *params: object) -> list[bool]:
        # Matched on (tag, token): a stale delivery of a message that is in the same batch under
        # its current lease must still report False.
        done: set[tuple[str, str]] = set()
        with self._file.db.transaction() as conn:
            for token, tags in _by_token(deliveries).items():
                rows = conn.execute(sql, [*params, tags, token]).fetchall()
                done.update((str(row[0]), token) for row in rows)
        return [(d.tag, d.token) in done for d in deliveries]

    def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Delete delivered messages; see :meth:`Broker.ack_many`."""
        if not deliveries:
            return []
        with self._file.errors("ack"):
            return self._settle(
                f"DELETE FROM celeriac_messages WHERE {_LEASED} RETURNING tag", deliveries
            )

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> list[bool]:
        """Push lease deadlines; see :meth:`Broker.extend`."""
        if not deliveries:
            return []
        with self._file.errors("extend"):
            return self._settle(
                f"UPDATE celeriac_messages SET available_at = ? WHERE {_LEASED} RETURNING tag",
                deliveries,
                self.clock() + lease,
            )

    def requeue(
        self, delivery: Delivery, *, message: Message | None = None, eta: float | None = None
    ) -> bool:
        """Give a message back; see :meth:`Broker.requeue`."""
        now = self.clock()
        delayed = eta is not None and eta > now
        placed = [0 if delayed else 1, eta if delayed else now]
        key = [int(delivery.tag), delivery.token]
        with self._file.errors("requeue"), self._file.db.transaction() as conn:
            if message is None:
                cursor = conn.execute(
                    "UPDATE celeriac_messages SET token = NULL, ready = ?, available_at = ?"
                    " WHERE tag = ? AND token = ?",
                    [*placed, *key],
                )
            else:
                cursor = conn.execute(
                    "UPDATE celeriac_messages SET token = NULL, ready = ?, available_at = ?,"
                    " attempt = 0, queue = ?, priority = ?, body = ? WHERE tag = ? AND token = ?",
                    [*placed, message.queue, message.priority, message.encode(), *key],
                )
            return cursor.rowcount == 1

    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Move a message to the dead letters; see :meth:`Broker.dead_letter`."""
        with self._file.errors("dead-letter"), self._file.db.transaction() as conn:
            row = conn.execute(
                "DELETE FROM celeriac_messages WHERE tag = ? AND token = ? RETURNING queue, body",
                [int(delivery.tag), delivery.token],
            ).fetchone()
            if row is None:
                return False
            conn.execute(
                "INSERT INTO celeriac_dead_letters (tag, queue, body, reason, dead_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [delivery.tag, row[0], row[1], reason, self.clock()],
            )
            return True

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters; see :meth:`Broker.dead_letters`."""
        with self._file.errors("reading dead letters"):
            rows = self._file.db.read(
                "SELECT tag, queue, body, reason, dead_at FROM celeriac_dead_letters"
                " ORDER BY id DESC LIMIT ?",
                [limit],
            )
        return [
            DeadLetter(tag, queue, bytes(body), reason, at) for tag, queue, body, reason, at in rows
        ]

    def requeue_dead_letters(self, tags: Sequence[str] | None, queue: str | None = None) -> int:
        """Dead letters back in a queue; see :meth:`Broker.requeue_dead_letters`.

        One transaction moves them: a crash leaves each either dead or queued, never both.

        Raises:
            BrokerError: the file cannot be used.
        """
        where, params = _dead_clause(tags)
        with self._file.errors("requeue dead letters"), self._file.db.transaction() as conn:
            rows = conn.execute(
                f"DELETE FROM celeriac_dead_letters {where} RETURNING id, queue, body", params
            ).fetchall()
            now = self.clock()
            conn.executemany(
                "INSERT INTO celeriac_messages (queue, priority, ready, available_at, body)"
                " VALUES (?, 0, 1, ?, ?)",
                [(queue or q, now, body) for _, q, body in sorted(rows)],
            )
            return len(rows)

    def delete_dead_letters(self, tags: Sequence[str] | None) -> int:
        """Delete dead letters; see :meth:`Broker.delete_dead_letters`.

        Raises:
            BrokerError: the file cannot be used.
        """
        where, params = _dead_clause(tags)
        with self._file.errors("delete dead letters"), self._file.db.transaction() as conn:
            return conn.execute(f"DELETE FROM celeriac_dead_letters {where}", params).rowcount

    def recover(self) -> int:
        """Clear expired lease tokens; see :meth:`Broker.recover`.

        Fetch already treats an expired lease as released; this only makes it visible. It also
        forgets expired ``publish_once`` keys.
        """
        now = self.clock()
        with self._file.errors("recover"), self._file.db.transaction() as conn:
            conn.execute("DELETE FROM celeriac_once WHERE expires_at <= ?", [now])
            cursor = conn.execute(
                "UPDATE celeriac_messages SET token = NULL"
                " WHERE token IS NOT NULL AND available_at <= ?",
                [now],
            )
            return cursor.rowcount

    def queue_lengths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages per queue; see :meth:`Broker.queue_lengths`."""
        marks = ",".join("?" * len(queues))
        with self._file.errors("counting messages"):
            rows = self._file.db.read(
                f"SELECT queue, COUNT(*) FROM celeriac_messages WHERE queue IN ({marks})"
                " GROUP BY queue",
                list(queues),
            )
        counts = dict.fromkeys(queues, 0)
        counts.update({queue: count for queue, count in rows})
        return counts

    def purge(self, queues: Sequence[str]) -> int:
        """Delete unleased messages; see :meth:`Broker.purge`."""
        marks = ",".join("?" * len(queues))
        with self._file.errors("purge"), self._file.db.transaction() as conn:
            cursor = conn.execute(
                f"DELETE FROM celeriac_messages WHERE queue IN ({marks})"
                " AND (token IS NULL OR available_at <= ?)",
                [*queues, self.clock()],
            )
            return cursor.rowcount

    def broadcast(self, payload: bytes, *, ttl: float = 86400.0) -> None:
        """Append a control message; see :meth:`Broker.broadcast`.

        Raises:
            PublishError: the file stayed locked for ``publish_timeout``, or another error.
        """
        now = self.clock()
        with self._publishing("broadcast") as conn:
            conn.execute("DELETE FROM celeriac_broadcasts WHERE expires_at <= ?", [now])
            conn.execute(
                "INSERT INTO celeriac_broadcasts (expires_at, payload) VALUES (?, ?)",
                [now + ttl, payload],
            )

    def read_broadcasts(self, cursor: str | None) -> tuple[list[bytes], str]:
        """Control messages after ``cursor``; see :meth:`Broker.read_broadcasts`."""
        after = int(cursor) if cursor else 0
        with self._file.errors("reading broadcasts"):
            rows = self._file.db.read(
                "SELECT seq, payload FROM celeriac_broadcasts"
                " WHERE seq > ? AND expires_at > ? ORDER BY seq",
                [after, self.clock()],
            )
        last = max((int(r[0]) for r in rows), default=after)
        return [bytes(r[1]) for r in rows], str(last)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for the calls inside (and a SQLite backend's on this file)."""
        with self._file.errors("a batch"), self._file.db.transaction():
            yield

    def close(self) -> None:
        """Close this thread's connection."""
        self._file.close()
