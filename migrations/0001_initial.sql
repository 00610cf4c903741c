-- Rota schema, step 1. Instants are integer Unix milliseconds (UTC).
-- This file is the single source of the schema: the build embeds it in the binary.
-- Never edit it once released; add 0002_*.sql instead (an edited applied migration is refused).

CREATE TABLE batches (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE CHECK (length(name) > 0),
    queue         TEXT    NOT NULL DEFAULT 'default',
    total         INTEGER NOT NULL DEFAULT 0,        -- items submitted so far
    sealed        INTEGER NOT NULL DEFAULT 0,        -- 1 once submission finished: completion can fire
    on_complete   TEXT,                              -- JSON task spec enqueued once when every item ended
    callback_task INTEGER,                           -- the task enqueued by on_complete
    created_at    INTEGER NOT NULL,
    completed_at  INTEGER
);

CREATE TABLE schedules (
    name          TEXT    PRIMARY KEY CHECK (length(name) > 0),
    expression    TEXT    NOT NULL,
    timezone      TEXT    NOT NULL DEFAULT 'UTC',
    task_name     TEXT    NOT NULL,                  -- 'exec' for commands
    payload       TEXT    NOT NULL DEFAULT '{}',
    queue         TEXT    NOT NULL DEFAULT 'default',
    priority      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 3,
    timeout_ms    INTEGER,
    missed        TEXT    NOT NULL DEFAULT 'skip' CHECK (missed IN ('skip', 'once', 'all')),
    missed_cap    INTEGER NOT NULL DEFAULT 100,      -- most catch-up runs for missed = 'all'
    overlap       TEXT    NOT NULL DEFAULT 'allow' CHECK (overlap IN ('allow', 'skip')),
    source        TEXT,                              -- file:line it was loaded from
    active        INTEGER NOT NULL DEFAULT 1,        -- 0 once removed from the files (history stays)
    next_fire_at  INTEGER,
    last_fire_at  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL CHECK (length(name) > 0),
    queue            TEXT    NOT NULL DEFAULT 'default' CHECK (length(queue) > 0),
    payload          TEXT    NOT NULL DEFAULT '{}',
    state            TEXT    NOT NULL DEFAULT 'scheduled'
                     CHECK (state IN ('scheduled', 'running', 'succeeded', 'dead', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0 CHECK (priority >= 0),   -- higher runs first
    run_at           INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),   -- attempts started so far
    max_attempts     INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    timeout_ms       INTEGER CHECK (timeout_ms IS NULL OR timeout_ms > 0),
    lease_owner      TEXT,                                               -- worker id while running
    lease_until      INTEGER,
    started_at       INTEGER,                                            -- start of the current attempt
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    unique_key       TEXT,
    batch_id         INTEGER REFERENCES batches(id),
    batch_item       TEXT,                                               -- item identity within the batch
    schedule         TEXT,
    fire_at          INTEGER,                                            -- the cron instant that made it
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    last_error       TEXT
);

-- Claiming: due tasks per queue, best priority first, oldest first. Partial, so finished rows cost nothing.
CREATE INDEX tasks_due ON tasks (queue, priority DESC, run_at) WHERE state = 'scheduled';
-- Counts per state, listing one state newest first (rowid order within a state), running tasks for leases.
CREATE INDEX tasks_state ON tasks (state);
-- Throughput over the last minute/hour, purge by age.
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX tasks_unique_key ON tasks (unique_key) WHERE unique_key IS NOT NULL;
CREATE UNIQUE INDEX tasks_batch_item ON tasks (batch_id, batch_item) WHERE batch_id IS NOT NULL;
CREATE UNIQUE INDEX tasks_fire ON tasks (schedule, fire_at) WHERE schedule IS NOT NULL;

-- One row per finished attempt, written once: a result is recorded exactly once per attempt.
CREATE TABLE attempts (
    task_id      INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    worker       TEXT,
    started_at   INTEGER,
    finished_at  INTEGER NOT NULL,
    outcome      TEXT    NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'timed_out', 'lost', 'cancelled')),
    error        TEXT,
    result       TEXT,
    PRIMARY KEY (task_id, attempt)
) WITHOUT ROWID;

CREATE TABLE workers (
    id            TEXT    PRIMARY KEY,
    host          TEXT    NOT NULL,
    pid           INTEGER NOT NULL,
    queues        TEXT    NOT NULL DEFAULT '[]',     -- JSON array of queue names
    task_names    TEXT    NOT NULL DEFAULT '[]',     -- JSON array of the task names it handles
    concurrency   INTEGER NOT NULL DEFAULT 0,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    stopped_at    INTEGER
);
