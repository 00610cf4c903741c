-- Rota schema, step 3: fewer writes per task on the hot path (enqueue, claim, completion).
--
-- Every index a row sits in, and every trigger statement a change fires, is another b-tree write (and another
-- page in the WAL at commit). Measured in C on this schema (bench/README.md), steps 1-2 cost 2.3x the C
-- limit's work per enqueue and 3x per claim+completion. This step:
--
-- 1. Counts of the two hot transitions, scheduled -> running (claim) and running -> succeeded (completion),
--    are no longer kept by a per-row trigger: the store adds them to task_counts itself, one statement per
--    (queue, name) per transaction, in the same transaction as the change. Every other change (inserts,
--    deletes, retries, cancels, recovery, dead, manual edits) is still counted by the triggers.
--    A hand-made edit of a task from scheduled to running, or from running to succeeded, is not counted;
--    `rota check` reports counts that disagree with the table and `rota check --recount` rebuilds them.
--    A scheduler of an older rota would leave those two transitions uncounted, so the store applies this
--    step only while no worker is live (stop the schedulers, upgrade, then `rota migrate`).
DROP TRIGGER tasks_count_update;
CREATE TRIGGER tasks_count_update AFTER UPDATE OF state, queue, name ON tasks
WHEN (OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue OR OLD.name IS NOT NEW.name)
 AND NOT (OLD.queue = NEW.queue AND OLD.name = NEW.name
          AND ((OLD.state = 'scheduled' AND NEW.state = 'running') OR (OLD.state = 'running' AND NEW.state = 'succeeded')))
BEGIN
    UPDATE task_counts SET n = n - 1 WHERE queue = OLD.queue AND name = OLD.name AND state = OLD.state;
    INSERT INTO task_counts(queue, name, state, n) VALUES (NEW.queue, NEW.name, NEW.state, 1)
    ON CONFLICT (queue, name, state) DO UPDATE SET n = n + 1;
END;

-- 2. tasks_state indexed every row by state, so each transition moved an entry (5 b-tree writes per task).
--    Partial indexes cover what it served: running tasks (heartbeats, lease recovery, listing), and the
--    rare terminal states dead and cancelled (listing newest first). Listing scheduled or succeeded tasks
--    walks tasks_due / tasks_finished or the table itself, whichever the counts say is shorter.
DROP INDEX tasks_state;
CREATE INDEX tasks_running ON tasks (lease_owner) WHERE state = 'running';
CREATE INDEX tasks_dead ON tasks (state) WHERE state = 'dead';
CREATE INDEX tasks_cancelled ON tasks (state) WHERE state = 'cancelled';

-- 3. The oldest due task is found from tasks_due (the first entry of each queue and priority), so this
--    second index of scheduled tasks goes.
DROP INDEX tasks_scheduled_run_at;
