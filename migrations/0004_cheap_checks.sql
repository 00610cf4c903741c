-- Rota schema, step 4: CHECK constraints a row change can afford.
--
-- SQLite evaluates `x IN ('a', 'b', 'c', ...)` with more than two constants by building a temporary b-tree of
-- the list, and in a CHECK constraint it does so on every row it checks: the state check on every insert
-- and every state change of a task, the outcome check on every attempt row. Measured with callgrind on the
-- C harness of bench/README.md, that was 47% of SQLite's instructions per task (insert, claim, completion).
-- The same constraints written as `x = 'a' OR x = 'b' OR ...` cost a few comparisons. SQLite cannot change
-- a table's constraints in place, so tasks and attempts are rebuilt (the documented procedure: new table,
-- copy, drop, rename, then the indexes and triggers again); the rows, ids, indexes and triggers are the same.
-- The batch triggers' IN lists become OR chains too (in a trigger they are rebuilt on every firing).
-- The migrator runs every step with foreign keys off and checks them before it commits.

-- batches_complete names tasks in its body: it goes while tasks is rebuilt, and comes back below.
DROP TRIGGER batches_complete;

CREATE TABLE tasks_new (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL CHECK (length(name) > 0),
    queue            TEXT    NOT NULL DEFAULT 'default' CHECK (length(queue) > 0),
    payload          TEXT    NOT NULL DEFAULT '{}',
    state            TEXT    NOT NULL DEFAULT 'scheduled'
                     CHECK (state = 'scheduled' OR state = 'running' OR state = 'succeeded'
                            OR state = 'dead' OR state = 'cancelled'),
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

CREATE TABLE attempts_new (
    task_id      INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    worker       TEXT,
    started_at   INTEGER,
    finished_at  INTEGER NOT NULL,
    outcome      TEXT    NOT NULL CHECK (outcome = 'succeeded' OR outcome = 'failed' OR outcome = 'timed_out'
                                  OR outcome = 'lost' OR outcome = 'cancelled'),
    error        TEXT,
    result       TEXT,
    PRIMARY KEY (task_id, attempt)
) WITHOUT ROWID;

INSERT INTO tasks_new SELECT * FROM tasks;
INSERT INTO attempts_new SELECT * FROM attempts;
DROP TABLE attempts;
DROP TABLE tasks;
ALTER TABLE tasks_new RENAME TO tasks;
ALTER TABLE attempts_new RENAME TO attempts;

-- The indexes of tasks, as steps 1-3 left them.
CREATE INDEX tasks_due ON tasks (queue, priority DESC, run_at) WHERE state = 'scheduled';
CREATE INDEX tasks_finished ON tasks (finished_at, state) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX tasks_unique_key ON tasks (unique_key) WHERE unique_key IS NOT NULL;
CREATE UNIQUE INDEX tasks_batch_item ON tasks (batch_id, batch_item) WHERE batch_id IS NOT NULL;
CREATE INDEX tasks_batch_state ON tasks (batch_id, state) WHERE batch_id IS NOT NULL;
CREATE UNIQUE INDEX tasks_fire ON tasks (schedule, fire_at) WHERE schedule IS NOT NULL;
CREATE INDEX tasks_running ON tasks (lease_owner) WHERE state = 'running';
CREATE INDEX tasks_dead ON tasks (state) WHERE state = 'dead';
CREATE INDEX tasks_cancelled ON tasks (state) WHERE state = 'cancelled';

-- The triggers of tasks, as steps 1-3 left them, with OR chains for IN lists.
CREATE TRIGGER tasks_batch_insert AFTER INSERT ON tasks WHEN NEW.batch_id IS NOT NULL
BEGIN
    UPDATE batches SET total = total + 1,
        finished = finished + (NEW.state = 'succeeded' OR NEW.state = 'dead' OR NEW.state = 'cancelled')
    WHERE id = NEW.batch_id;
END;

CREATE TRIGGER tasks_batch_state AFTER UPDATE OF state ON tasks
WHEN NEW.batch_id IS NOT NULL
 AND (OLD.state = 'succeeded' OR OLD.state = 'dead' OR OLD.state = 'cancelled')
  <> (NEW.state = 'succeeded' OR NEW.state = 'dead' OR NEW.state = 'cancelled')
BEGIN
    UPDATE batches SET finished = finished
        + CASE WHEN NEW.state = 'succeeded' OR NEW.state = 'dead' OR NEW.state = 'cancelled' THEN 1 ELSE -1 END
    WHERE id = NEW.batch_id;
END;

CREATE TRIGGER tasks_batch_delete AFTER DELETE ON tasks WHEN OLD.batch_id IS NOT NULL
BEGIN
    UPDATE batches SET total = total - 1,
        finished = finished - (OLD.state = 'succeeded' OR OLD.state = 'dead' OR OLD.state = 'cancelled')
    WHERE id = OLD.batch_id;
END;

CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts(queue, name, state, n) VALUES (NEW.queue, NEW.name, NEW.state, 1)
    ON CONFLICT (queue, name, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET n = n - 1 WHERE queue = OLD.queue AND name = OLD.name AND state = OLD.state;
END;

CREATE TRIGGER tasks_count_update AFTER UPDATE OF state, queue, name ON tasks
WHEN (OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue OR OLD.name IS NOT NEW.name)
 AND NOT (OLD.queue = NEW.queue AND OLD.name = NEW.name
          AND ((OLD.state = 'scheduled' AND NEW.state = 'running') OR (OLD.state = 'running' AND NEW.state = 'succeeded')))
BEGIN
    UPDATE task_counts SET n = n - 1 WHERE queue = OLD.queue AND name = OLD.name AND state = OLD.state;
    INSERT INTO task_counts(queue, name, state, n) VALUES (NEW.queue, NEW.name, NEW.state, 1)
    ON CONFLICT (queue, name, state) DO UPDATE SET n = n + 1;
END;

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
