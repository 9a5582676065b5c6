-- Schema of the SQLite broker (celeriac/brokers/sqlite.py).
-- Tables: celeriac_messages, celeriac_dead_letters, celeriac_broadcasts, celeriac_once.
--
-- celeriac_messages holds every message that is not yet settled. ready = 1 puts a row in the
-- hand-out order; it is fetchable once available_at has passed: for a waiting message that is its
-- publish time, for a leased one its lease deadline, so a lease whose holder died simply runs
-- out. ready = 0 marks a delayed message (countdown, eta, retry): it joins the hand-out order
-- when available_at (its ETA) passes, so delayed messages never slow down a fetch. token is the
-- current lease's proof (NULL when the message was never handed out or was given back); attempt
-- counts hand-outs since the message was last (re)published.

CREATE TABLE IF NOT EXISTS celeriac_messages (
    tag          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    priority     INTEGER NOT NULL,
    ready        INTEGER NOT NULL,
    available_at REAL    NOT NULL,
    token        TEXT,
    attempt      INTEGER NOT NULL DEFAULT 0,
    body         BLOB    NOT NULL
);
-- Hand-out order: highest priority first, then oldest first; available_at rides along so that
-- skipping leased rows reads the index only.
CREATE INDEX IF NOT EXISTS celeriac_messages_order
    ON celeriac_messages (queue, priority DESC, tag, available_at) WHERE ready = 1;
-- Delayed messages by due time.
CREATE INDEX IF NOT EXISTS celeriac_messages_delayed
    ON celeriac_messages (available_at) WHERE ready = 0;

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

-- Keys of publish_once: a key here means "already published"; it outlives the message.
CREATE TABLE IF NOT EXISTS celeriac_once (
    key        TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
