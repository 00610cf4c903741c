-- Rota schema, step 1. Instants are integer Unix milliseconds (UTC).
-- This file is the single source of the schema: the build embeds it in the binary.
-- Never edit it once released; add 0002_*.sql instead (an edited applied migration is refused).

CREATE TABLE batches (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE CHECK (length(name) > 0),
    queue         TEXT    NOT NULL DEFAULT 'default',
    total         INTEGER NOT NULL DEFAULT 0,        -- items submitted so far (kept by triggers below)
    finished      INTEGER NOT NULL DEFAULT 0,        -- items succeeded, dead or cancelled (kept by triggers)
    sealed        INTEGER NOT NULL DEFAULT 0,        -- 1 once submission finished: completion can fire
    on_complete   TEXT,                              -- JSON {"name", "payload"?, "queue"?}: enqueued once at completion
    created_at    INTEGER NOT NULL,
    completed_at  INTEGER                            -- set once, when sealed and every item finished
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
-- Per-state counts of one batch without touching its rows.
CREATE INDEX tasks_batch_state ON tasks (batch_id, state) WHERE batch_id IS NOT NULL;
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

-- Batch progress lives in the same transaction as every state change, whichever code path makes it.
CREATE TRIGGER tasks_batch_insert AFTER INSERT ON tasks WHEN NEW.batch_id IS NOT NULL
BEGIN
    UPDATE batches SET total = total + 1,
        finished = finished + (NEW.state IN ('succeeded', 'dead', 'cancelled'))
    WHERE id = NEW.batch_id;
END;

CREATE TRIGGER tasks_batch_state AFTER UPDATE OF state ON tasks
WHEN NEW.batch_id IS NOT NULL
 AND (OLD.state IN ('succeeded', 'dead', 'cancelled')) <> (NEW.state IN ('succeeded', 'dead', 'cancelled'))
BEGIN
    UPDATE batches SET finished = finished + CASE WHEN NEW.state IN ('succeeded', 'dead', 'cancelled') THEN 1 ELSE -1 END
    WHERE id = NEW.batch_id;
END;

CREATE TRIGGER tasks_batch_delete AFTER DELETE ON tasks WHEN OLD.batch_id IS NOT NULL
BEGIN
    UPDATE batches SET total = total - 1,
        finished = finished - (OLD.state IN ('succeeded', 'dead', 'cancelled'))
    WHERE id = OLD.batch_id;
END;

-- Completion fires once: when the batch is sealed and every item finished, stamp it and enqueue its
-- on_complete task (unique per batch, so it can never be enqueued twice).
CREATE TRIGGER batches_complete AFTER UPDATE OF finished, sealed ON batches
WHEN NEW.sealed = 1 AND NEW.finished >= NEW.total AND NEW.completed_at IS NULL
BEGIN
    UPDATE batches SET completed_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) WHERE id = NEW.id;
    INSERT INTO tasks (name, queue, payload, run_at, created_at, updated_at, unique_key)
    SELECT json_extract(NEW.on_complete, '$.name'),
           coalesce(json_extract(NEW.on_complete, '$.queue'), NEW.queue),
           coalesce(json(json_extract(NEW.on_complete, '$.payload')), json_object('batch', NEW.name)),
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
           'rota:batch-complete:' || NEW.id
    WHERE NEW.on_complete IS NOT NULL
    ON CONFLICT DO NOTHING;
END;
