-- Rota schema, step 5: the store counts the tasks it inserts.
--
-- tasks_count_insert ran a trigger program for every inserted row: 24% of SQLite's instructions per enqueued
-- task (callgrind, bench/README.md). The store now adds its inserts to task_counts itself, one statement per
-- (queue, name) per transaction, in the same transaction: enqueues (one or many, batch items included) and
-- cron fires. The batch completion trigger counts the task it inserts. A task inserted by hand is not
-- counted: `rota check` reports counts that disagree with the table, `rota check --recount` rebuilds them.
-- Deletes, and state changes other than claims and successes, are still counted by triggers.
-- As with step 3, an older scheduler still running would leave its cron fires uncounted, so the store
-- applies this step only while no worker is live.
DROP TRIGGER tasks_count_insert;

DROP TRIGGER batches_complete;
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
    -- The task this trigger inserts (if it did: the unique key may have been taken), it counts itself.
    INSERT INTO task_counts(queue, name, state, n)
    SELECT coalesce(json_extract(NEW.on_complete, '$.queue'), NEW.queue), json_extract(NEW.on_complete, '$.name'),
           'scheduled', 1
    WHERE NEW.on_complete IS NOT NULL AND changes() = 1
    ON CONFLICT (queue, name, state) DO UPDATE SET n = n + 1;
END;
