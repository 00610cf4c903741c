-- Rota schema, step 8: a completed batch whose items are pending again is running again.
--
-- `rota batch retry` (or `rota retry` of a dead item, or a recount) can take a batch's finished count below
-- its total after batches_complete set completed_at. The batch then showed "complete" with items still to
-- run, and `rota batch status --watch` stopped at once. Now completed_at goes back to NULL whenever finished
-- drops below total, so the batch is running again; when its items finish, batches_complete sets
-- completed_at anew. Its on_complete task is inserted once per batch, whatever the number of completions
-- (its unique key 'rota:batch-complete:<id>' is already taken the second time).
--
-- The trigger fires on updates of batches.finished only (a batch item's state change, a delete, a
-- recount), never on the hot path of tasks outside batches. An older scheduler on the same file is unaffected.
CREATE TRIGGER batches_reopen AFTER UPDATE OF finished ON batches
WHEN NEW.completed_at IS NOT NULL AND NEW.finished < NEW.total
BEGIN
    UPDATE batches SET completed_at = NULL WHERE id = NEW.id;
END;
