-- Schema of the SQLite result backend (celeriac/backends/sqlite.py).
-- Tables: celeriac_results, celeriac_sets, celeriac_documents. The task history has a file of
-- its own (sqlite_history.sql).
--
-- One row per task id. A row in a final state (SUCCESS, FAILURE, REVOKED) is only replaced
-- once it has expired; expires_at NULL means it never expires.
--
-- Rows are kept in the order they were stored (the rowid), with the task id as a UNIQUE
-- index, for the reason celeriac_tasks (sqlite_history.sql) is: a worker's turn stores a
-- result per task, and a table keyed by the (random) task id wrote a random page of full rows
-- for each, where this appends rows to the last pages and writes only the index's small
-- entries at random (a sixth fewer pages in the WAL per turn). The code never names `id`. A
-- file made before this layout keeps its table (keyed by task_id, WITHOUT ROWID); every
-- statement works on both.

CREATE TABLE IF NOT EXISTS celeriac_results (
    id           INTEGER PRIMARY KEY,
    task_id      TEXT    NOT NULL UNIQUE,
    state        TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    date_done    REAL,
    retries      INTEGER NOT NULL DEFAULT 0,
    meta         TEXT    NOT NULL DEFAULT '{}',
    expires_at   REAL
);
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
