-- Rota schema, step 9: a worker's death does not use up a task's attempts; a task that keeps killing its
-- worker is found and stopped by a poison limit instead.
--
-- Before, a task whose scheduler was SIGKILLed while it ran got a `lost` attempt that counted against
-- max_attempts, so a scheduler killed three times in a row (an OOM loop, a bad deploy) left healthy tasks
-- dead. Now a recovered attempt is still recorded (`lost`) and counted in `losses`, but it gives the task its
-- attempt back (max_attempts + 1, as a shutdown's hand-back does). What stops a task that crashes its worker
-- every time is the poison limit: a task lost twice is a suspect, and its scheduler runs it alone (no other
-- attempt in flight on that worker; `alone` = 1 while it runs so). Only a loss while running alone is
-- charged (`solo_losses`): an innocent task killed beside a poison one is not. At `poison_limit` solo losses
-- the task is dead, with a reason that says so.
ALTER TABLE tasks ADD COLUMN losses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN solo_losses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN alone INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN poison_limit INTEGER NOT NULL DEFAULT 2;
