-- Rota schema, step 10: a schedule's jitter (`jitter=DURATION` in a schedule file).
--
-- Each fire's task runs at its fire instant plus a delay in [0, jitter_ms], derived from a hash of the
-- schedule's name and the instant (the same in every scheduler and after every restart), so a fleet of
-- machines with the same schedule does not start at the same second. The task's fire_at stays the cron
-- instant (exactly-once firing is keyed by it); only its run_at moves. NULL: no jitter.
ALTER TABLE schedules ADD COLUMN jitter_ms INTEGER CHECK (jitter_ms IS NULL OR jitter_ms > 0);
