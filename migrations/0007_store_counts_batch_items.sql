-- Rota schema, step 7: the store counts the items it adds to a batch.
--
-- tasks_batch_insert ran its program for every inserted task, batch item or not (its WHEN clause is
-- evaluated inside the program): 20% of SQLite's instructions per enqueued task (callgrind,
-- bench/README.md). The store now adds its new items to batches.total itself, one statement per batch per
-- transaction, in the same transaction (items are always inserted scheduled, so `finished` does not move).
-- A batch item inserted by hand is not counted: `rota check` reports the batch totals that disagree with
-- the tasks table, `rota check --recount` rebuilds them. Deletes and state changes are still counted by
-- the batch triggers. Stop schedulers and `rota batch submit` runs of an older rota before upgrading.
DROP TRIGGER tasks_batch_insert;
