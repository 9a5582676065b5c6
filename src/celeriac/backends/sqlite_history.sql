-- Task history (celeriac/backends/sqlite_history.py; docs/design/monitoring.md), in a file of
-- its own beside the backend's (history_path): celeriac_event_log, celeriac_history_marks,
-- celeriac_tasks, celeriac_task_stats, celeriac_workers. A file made before 2026-12 holds the
-- history tables too, beside its results; they are no longer read there. A history file made
-- before the event log holds celeriac_event_feed, no longer read either.

-- The event log: one row a frame of event rows (celeriac.event_rows), as a worker's events
-- process (or a client: task-sent, task-progress) appended it. The history is indexed from it
-- when it is read (backends/history_log.py); the live feed reads it. A row goes once indexed
-- and FEED_SECONDS old, or once older than its writer's retention, indexed or not (by `at`).
CREATE TABLE IF NOT EXISTS celeriac_event_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL NOT NULL,
    hostname  TEXT NOT NULL,
    retention REAL,
    frame     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS celeriac_event_log_at ON celeriac_event_log (at);

-- Marks of the history's state: 'indexed', the id of the last log row indexed.
CREATE TABLE IF NOT EXISTS celeriac_history_marks (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
--
-- One row per task: its events merged (celeriac.history.fold, then the upsert in
-- sqlite_history.py), and its timeline, `events`, as JSON lines. `seen` is the time of its
-- first event: listings go newest first by it, and the row is pruned once `seen` is older than
-- task_history_expires. Rows are kept in the order they were written (the rowid): a write
-- appends to the table's last pages rather than dirtying a random page a task, as a table
-- keyed by the task id would (that made the history's commits cost twice a turn's); the task
-- id is a secondary, UNIQUE, index (small entries: the upsert's lookup). Only `seen` is
-- indexed besides: every index is written with each row; a search by state, name, worker or
-- text scans the rows newest first (see the module). The code never names `id`.
CREATE TABLE IF NOT EXISTS celeriac_tasks (
    id         INTEGER PRIMARY KEY,
    task_id    TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL,
    args       TEXT NOT NULL DEFAULT '',
    kwargs     TEXT NOT NULL DEFAULT '',
    result     TEXT NOT NULL DEFAULT '',
    exception  TEXT NOT NULL DEFAULT '',
    traceback  TEXT NOT NULL DEFAULT '',
    worker     TEXT NOT NULL DEFAULT '',
    queue      TEXT NOT NULL DEFAULT '',
    parent_id  TEXT NOT NULL DEFAULT '',
    root_id    TEXT NOT NULL DEFAULT '',
    group_id   TEXT NOT NULL DEFAULT '',
    retries    INTEGER NOT NULL DEFAULT 0,
    children   TEXT NOT NULL DEFAULT '[]',
    sent       REAL,
    received   REAL,
    started    REAL,
    finished   REAL,
    runtime    REAL,
    progress   TEXT,
    seen       REAL NOT NULL,
    state_time REAL NOT NULL,
    events     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS celeriac_tasks_seen ON celeriac_tasks (seen);

-- What finished in each whole second (celeriac.history.SecondStats), for history_series.
CREATE TABLE IF NOT EXISTS celeriac_task_stats (
    second        INTEGER PRIMARY KEY,
    succeeded     INTEGER NOT NULL,
    failed        INTEGER NOT NULL,
    retried       INTEGER NOT NULL,
    runtime_sum   REAL    NOT NULL,
    runtime_count INTEGER NOT NULL,
    runtime_max   REAL    NOT NULL
) WITHOUT ROWID;

-- Workers' latest heartbeats (celeriac.history.WorkerEntry.to_dict as JSON).
CREATE TABLE IF NOT EXISTS celeriac_workers (
    hostname   TEXT PRIMARY KEY,
    entry      TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
