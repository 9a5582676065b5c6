-- Schema of the SQLite broker (celeriac/brokers/sqlite.py).
-- Tables: celeriac_messages, celeriac_dead_letters, celeriac_broadcasts.
--
-- celeriac_messages holds every message that is not yet settled. A message is ready when
-- available_at has passed: for a new message that is its ETA (or its publish time), for a leased
-- message it is the lease deadline, so a lease whose holder died simply runs out. token is the
-- current lease's proof (NULL when the message was never handed out or was given back); attempt
-- counts hand-outs since the message was last (re)published.

CREATE TABLE IF NOT EXISTS celeriac_messages (
    tag          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    priority     INTEGER NOT NULL,
    available_at REAL    NOT NULL,
    token        TEXT,
    attempt      INTEGER NOT NULL DEFAULT 0,
    body         BLOB    NOT NULL
);
-- Hand-out order: highest priority first, then oldest first.
CREATE INDEX IF NOT EXISTS celeriac_messages_order
    ON celeriac_messages (queue, priority DESC, tag);
-- "When does the next message of these queues become ready?", for waiting fetches.
CREATE INDEX IF NOT EXISTS celeriac_messages_available
    ON celeriac_messages (queue, available_at);

CREATE TABLE IF NOT EXISTS celeriac_dead_letters (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    tag     TEXT NOT NULL,
    queue   TEXT NOT NULL,
    body    BLOB NOT NULL,
    reason  TEXT NOT NULL,
    dead_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS celeriac_broadcasts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    expires_at REAL NOT NULL,
    payload    BLOB NOT NULL
);
