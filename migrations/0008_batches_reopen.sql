-- Rota schema, step 8: a completed batch whose items are pending again is running again; its on_complete
-- task is still enqueued once.
--
-- `rota batch retry` (or `rota retry` of a dead item, a recount) can take a batch's finished count below its
-- total after batches_complete set completed_at, and submitting more items to a completed batch raises its
-- total. The batch then showed "complete" with items still to run, and `rota batch status --watch` and
-- `awaitBatch` returned at once. Now completed_at goes back to NULL whenever finished drops below total, by
-- either column, so the batch is running again; when its items finish, batches_complete sets completed_at
-- anew.
--
-- on_complete runs once per batch: on_complete_fired remembers that its task was enqueued (before, only the
-- task's unique key did, and `rota purge` may delete that task once it finished), and batches_complete
-- enqueues it only the first time.
--
-- The triggers fire on updates of batches' finished, total or sealed only (a batch item's state change,
-- a delete, a submission, a recount), never for tasks outside batches. An older scheduler on the same file is
-- unaffected: these triggers run inside its statements too.
ALTER TABLE batches ADD COLUMN on_complete_fired INTEGER NOT NULL DEFAULT 0;
UPDATE batches SET on_complete_fired = 1 WHERE completed_at IS NOT NULL;

-- Batches already shown complete with items pending (retried before this step).
UPDATE batches SET completed_at = NULL WHERE completed_at IS NOT NULL AND finished < total;

CREATE TRIGGER batches_reopen AFTER UPDATE OF finished, total ON batches
WHEN NEW.completed_at IS NOT NULL AND NEW.finished < NEW.total
BEGIN
    UPDATE batches SET completed_at = NULL WHERE id = NEW.id;
END;

-- As in step 5, with the on_complete task enqueued only the first time the batch completes.
DROP TRIGGER batches_complete;
CREATE TRIGGER batches_complete AFTER UPDATE OF finished, sealed ON batches
WHEN NEW.sealed = 1 AND NEW.finished >= NEW.total AND NEW.completed_at IS NULL
BEGIN
    UPDATE batches SET completed_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
                       on_complete_fired = 1
    WHERE id = NEW.id;
    INSERT INTO tasks (name, queue, payload, run_at, created_at, updated_at, unique_key)
    SELECT json_extract(NEW.on_complete, '$.name'),
           coalesce(json_extract(NEW.on_complete, '$.queue'), NEW.queue),
           coalesce(json(json_extract(NEW.on_complete, '$.payload')), json_object('batch', NEW.name)),
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
           'rota:batch-complete:' || NEW.id
    WHERE NEW.on_complete IS NOT NULL AND NEW.on_complete_fired = 0
    ON CONFLICT DO NOTHING;
    -- The task this trigger inserts (if it did: the unique key may have been taken), it counts itself.
    INSERT INTO task_counts(queue, name, state, n)
    SELECT coalesce(json_extract(NEW.on_complete, '$.queue'), NEW.queue), json_extract(NEW.on_complete, '$.name'),
           'scheduled', 1
    WHERE NEW.on_complete IS NOT NULL AND NEW.on_complete_fired = 0 AND changes() = 1
    ON CONFLICT (queue, name, state) DO UPDATE SET n = n + 1;
END;
