-- Rota schema, step 6: no trigger program runs for a claim or for the success of a task outside a batch.
--
-- An AFTER UPDATE trigger runs a program for every row of every UPDATE that names a column it watches,
-- even when its WHEN clause is false: a frame allocated and zeroed, then freed at the end of the statement.
-- Watching `state`, the count and batch triggers ran twice for each claimed task and twice for each success,
-- although the store counts those two transitions itself (step 3) and neither changes whether a task is
-- finished, except a batch item's success. Measured with callgrind (bench/README.md): about 14k of 82k
-- instructions per task.
--
-- The two triggers now watch `run_at` and `last_error` (and the count trigger, `queue` and `name`). Every
-- other state change the store makes names one of them: a retry, a hand-back and a recovery set run_at;
-- a failure, a cancel and a dead end set last_error; the success of a batch item sets
-- `last_error = last_error`. A claim and the success of a task outside a batch name neither.
-- A state changed by hand without touching those columns is not counted: `rota check` reports the counts
-- that disagree, `rota check --recount` rebuilds them. A test checks that every state-changing statement
-- of the store but the two hot ones runs the triggers.
DROP TRIGGER tasks_count_update;
CREATE TRIGGER tasks_count_update AFTER UPDATE OF run_at, last_error, queue, name ON tasks
WHEN (OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue OR OLD.name IS NOT NEW.name)
 AND NOT (OLD.queue = NEW.queue AND OLD.name = NEW.name
          AND ((OLD.state = 'scheduled' AND NEW.state = 'running') OR (OLD.state = 'running' AND NEW.state = 'succeeded')))
BEGIN
    UPDATE task_counts SET n = n - 1 WHERE queue = OLD.queue AND name = OLD.name AND state = OLD.state;
    INSERT INTO task_counts(queue, name, state, n) VALUES (NEW.queue, NEW.name, NEW.state, 1)
    ON CONFLICT (queue, name, state) DO UPDATE SET n = n + 1;
END;

DROP TRIGGER tasks_batch_state;
CREATE TRIGGER tasks_batch_state AFTER UPDATE OF run_at, last_error ON tasks
WHEN NEW.batch_id IS NOT NULL
 AND (OLD.state = 'succeeded' OR OLD.state = 'dead' OR OLD.state = 'cancelled')
  <> (NEW.state = 'succeeded' OR NEW.state = 'dead' OR NEW.state = 'cancelled')
BEGIN
    UPDATE batches SET finished = finished
        + CASE WHEN NEW.state = 'succeeded' OR NEW.state = 'dead' OR NEW.state = 'cancelled' THEN 1 ELSE -1 END
    WHERE id = NEW.batch_id;
END;
