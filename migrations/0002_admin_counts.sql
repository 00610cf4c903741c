-- Rota schema, step 2: what `rota stats` and `rota list` need to answer in milliseconds on millions of tasks.

-- Task counts per queue, name and state, kept by triggers in the same transaction as every change, so stats
-- read a few rows instead of scanning the table. Rows are never deleted (a count may drop to 0).
CREATE TABLE task_counts (
    queue  TEXT    NOT NULL,
    name   TEXT    NOT NULL,
    state  TEXT    NOT NULL,
    n      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, name, state)
) WITHOUT ROWID;

INSERT INTO task_counts(queue, name, state, n) SELECT queue, name, state, count(*) FROM tasks GROUP BY queue, name, state;

CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts(queue, name, state, n) VALUES (NEW.queue, NEW.name, NEW.state, 1)
    ON CONFLICT (queue, name, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET n = n - 1 WHERE queue = OLD.queue AND name = OLD.name AND state = OLD.state;
END;

-- Fires only for statements that set one of these columns (heartbeats and lease extensions do not).
CREATE TRIGGER tasks_count_update AFTER UPDATE OF state, queue, name ON tasks
WHEN OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue OR OLD.name IS NOT NEW.name BEGIN
    UPDATE task_counts SET n = n - 1 WHERE queue = OLD.queue AND name = OLD.name AND state = OLD.state;
    INSERT INTO task_counts(queue, name, state, n) VALUES (NEW.queue, NEW.name, NEW.state, 1)
    ON CONFLICT (queue, name, state) DO UPDATE SET n = n + 1;
END;

-- The oldest due task in O(log n) whatever the backlog (tasks_due is ordered by priority first).
CREATE INDEX tasks_scheduled_run_at ON tasks (run_at) WHERE state = 'scheduled';

-- Throughput over the last minute/hour and purge by age, without reading table rows for the state.
DROP INDEX tasks_finished;
CREATE INDEX tasks_finished ON tasks (finished_at, state) WHERE finished_at IS NOT NULL;
