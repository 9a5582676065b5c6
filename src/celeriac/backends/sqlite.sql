-- Schema of the SQLite result backend (celeriac/backends/sqlite.py).
-- Tables: celeriac_results, celeriac_sets, celeriac_documents.
--
-- One row per task id. A row in a final state (SUCCESS, FAILURE, REVOKED) is only replaced
-- once it has expired; expires_at NULL means it never expires.

CREATE TABLE IF NOT EXISTS celeriac_results (
    task_id      TEXT    PRIMARY KEY,
    state        TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    date_done    REAL,
    retries      INTEGER NOT NULL DEFAULT 0,
    meta         TEXT    NOT NULL DEFAULT '{}',
    expires_at   REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS celeriac_results_expiry
    ON celeriac_results (expires_at) WHERE expires_at IS NOT NULL;

-- Workflow state (chords, DAG runs): sets of finished members, and JSON documents.
CREATE TABLE IF NOT EXISTS celeriac_sets (
    key        TEXT NOT NULL,
    member     TEXT NOT NULL,
    expires_at REAL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS celeriac_documents (
    key        TEXT PRIMARY KEY,
    document   TEXT NOT NULL,
    expires_at REAL
) WITHOUT ROWID;
