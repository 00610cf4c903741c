import Foundation
import Rota
import RotaSQLite

extension SQLiteTaskStore {
    /// The scheduled tasks that no live worker can run, per queue and name: no live worker both serves
    /// the queue and handles the name. They wait until one starts (or is told to serve the queue).
    ///
    /// The groups come from the maintained counts (a few rows whatever the table's size); with `batch`,
    /// only the groups with scheduled items of that batch, counted in it (one pass over the batch's
    /// scheduled items, made only when some group has no live worker).
    /// - Parameters:
    ///   - now: the instant liveness is judged at (``WorkerRecord/livenessWindow``).
    ///   - batch: a batch id, or nil for every task.
    public func unhandledTasks(now: Date = Date(), batch: Int64? = nil) async throws -> [UnhandledTasks] {
        try await io { [self] in
            try read { db in
                try db.transaction(.deferred) {
                    let groups = try db.query("""
                        SELECT queue, name, sum(n) FROM task_counts WHERE state = 'scheduled'
                        GROUP BY queue, name HAVING sum(n) > 0 ORDER BY queue, name
                        """, [], { ($0.string(0), $0.string(1), $0.int(2)) })
                    if groups.isEmpty { return [] }
                    let live = try Self.workers(db).filter { $0.isLive(now: now) }
                    let unhandled = UnhandledTasks.among(groups, live: live)
                    guard let batch, !unhandled.isEmpty else { return unhandled }
                    // The batch's own scheduled items per queue and name: one pass over them.
                    var inBatch: [String: [String: Int]] = [:]
                    for (queue, name, count) in try db.query("""
                        SELECT queue, name, count(*) FROM tasks WHERE batch_id = ? AND state = 'scheduled' GROUP BY queue, name
                        """, [.integer(batch)], { ($0.string(0), $0.string(1), $0.int(2)) }) {
                        inBatch[queue, default: [:]][name] = count
                    }
                    return UnhandledTasks.counted(unhandled, inBatch: inBatch)
                }
            }
        }
    }

    /// Fills the database with `count` synthetic tasks, for benchmarks and tests of the admin tools.
    ///
    /// Tasks are spread over the 30 days before `now`, five queues (`q0`…`q4`) and twenty names
    /// (`bench.0`…`bench.19`), and across states: 70% `succeeded`, 10% `dead`, 5% `cancelled`,
    /// 13% `scheduled` (half due, half in the future), 2% `running`. Every finished task gets one attempt.
    /// Written in transactions of `chunk` tasks so the WAL stays small.
    ///
    /// - Returns: the number of tasks inserted.
    @_spi(RotaTools) @discardableResult
    public func insertSyntheticTasks(count: Int, now: Date, chunk: Int = 50_000) throws -> Int {
        let nowMs = now.unixMillis
        let span: Int64 = 30 * 86_400_000
        let step = max(1, span / Int64(max(1, count)))
        var done = 0
        while done < count {
            let n = min(chunk, count - done)
            let first = Int64(done)
            try write { db in
                // The new rows' ids are above the largest id before the insert (read under the write lock).
                let base = try db.scalarInt("SELECT coalesce(max(id), 0) FROM tasks") ?? 0
                try db.run("""
                    WITH RECURSIVE seq(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?2),
                    rows(i, kind, created) AS (SELECT i, i % 100, ?3 - (?4 - i) * ?5 FROM seq)
                    INSERT INTO tasks(name, queue, payload, state, priority, run_at, attempts, max_attempts,
                                      lease_owner, lease_until, started_at, created_at, updated_at, finished_at, last_error)
                    SELECT 'bench.' || (i % 20), 'q' || (i % 5), '{"n":' || i || '}',
                           CASE WHEN kind < 70 THEN 'succeeded' WHEN kind < 80 THEN 'dead' WHEN kind < 85 THEN 'cancelled'
                                WHEN kind < 98 THEN 'scheduled' ELSE 'running' END,
                           i % 3,
                           CASE WHEN kind >= 85 AND kind < 98 AND i % 2 = 0 THEN ?3 + (i % 3600) * 1000 ELSE created END,
                           CASE WHEN kind < 70 THEN 1 WHEN kind < 80 THEN 3 WHEN kind < 85 THEN 0
                                WHEN kind < 98 THEN 0 ELSE 1 END,
                           3,
                           CASE WHEN kind >= 98 THEN 'bench-worker' END,
                           CASE WHEN kind >= 98 THEN ?3 + 60000 END,
                           CASE WHEN kind < 80 OR kind >= 98 THEN created + 10 END,
                           created, created + 2000,
                           CASE WHEN kind < 85 THEN created + 2000 END,
                           CASE WHEN kind >= 70 AND kind < 80 THEN 'synthetic failure ' || i END
                    FROM rows
                    """, [.integer(first), .integer(first + Int64(n) - 1), .integer(nowMs), .integer(Int64(count)),
                          .integer(step)])
                // The store counts the tasks it inserts (migration 5): these, by their new ids.
                try db.run("""
                    INSERT INTO task_counts(queue, name, state, n)
                    SELECT queue, name, state, count(*) FROM tasks WHERE id > ?1 GROUP BY queue, name, state
                    ON CONFLICT (queue, name, state) DO UPDATE SET n = n + excluded.n
                    """, [.integer(base)])
                try db.run("""
                    INSERT INTO attempts(task_id, attempt, worker, started_at, finished_at, outcome, error, result)
                    SELECT id, attempts, 'bench-worker', started_at, finished_at,
                           CASE state WHEN 'succeeded' THEN 'succeeded' ELSE 'failed' END,
                           last_error, CASE state WHEN 'succeeded' THEN '{"ok":true}' END
                    FROM tasks WHERE id > ?1 AND state IN ('succeeded', 'dead')
                    """, [.integer(base)])
            }
            done += n
        }
        return done
    }
}

extension SQLiteTaskStore {
    /// The batches whose `total` or `finished` disagrees with their items (empty when all agree). Scans the
    /// batch items: for `rota check`. They go wrong only when the file is edited by hand (see
    /// migrations/0007_store_counts_batch_items.sql); ``recount()`` rebuilds them.
    public func batchCountMismatches() throws -> [BatchCountMismatch] {
        try read { db in
            try db.transaction(.deferred) {
                try db.query(Self.batchActualSQL + """
                    SELECT b.name, b.total, b.finished, coalesce(a.total, 0), coalesce(a.finished, 0)
                    FROM batches b LEFT JOIN actual a ON a.id = b.id
                    WHERE b.total <> coalesce(a.total, 0) OR b.finished <> coalesce(a.finished, 0) ORDER BY b.name
                    """) { row -> [BatchCountMismatch] in
                    var wrong: [BatchCountMismatch] = []
                    if row.int(1) != row.int(3) {
                        wrong.append(BatchCountMismatch(batch: row.string(0), field: "total", counted: row.int(1), actual: row.int(3)))
                    }
                    if row.int(2) != row.int(4) {
                        wrong.append(BatchCountMismatch(batch: row.string(0), field: "finished", counted: row.int(2), actual: row.int(4)))
                    }
                    return wrong
                }.flatMap { $0 }
            }
        }
    }

    /// Each batch's items as the tasks table has them: `actual(id, total, finished)`.
    private static let batchActualSQL = """
        WITH actual(id, total, finished) AS (
            SELECT batch_id, count(*), sum(state = 'succeeded' OR state = 'dead' OR state = 'cancelled')
            FROM tasks WHERE batch_id IS NOT NULL GROUP BY batch_id)

        """

    /// The per-(queue, name, state) counts behind `rota stats` that disagree with the tasks table (empty when
    /// all agree). Scans the table: for `rota check`. Counts go wrong only when the file is edited by hand
    /// (see migrations/0003_lean_hot_path.sql); ``recount()`` rebuilds them.
    public func countMismatches() throws -> [CountMismatch] {
        try read { db in
            try db.transaction(.deferred) {
                try db.query("""
                    WITH actual(queue, name, state, n) AS (SELECT queue, name, state, count(*) FROM tasks GROUP BY 1, 2, 3),
                    keys(queue, name, state) AS (SELECT queue, name, state FROM actual UNION SELECT queue, name, state FROM task_counts)
                    SELECT k.queue, k.name, k.state, coalesce(c.n, 0), coalesce(a.n, 0) FROM keys k
                    LEFT JOIN task_counts c ON c.queue = k.queue AND c.name = k.name AND c.state = k.state
                    LEFT JOIN actual a ON a.queue = k.queue AND a.name = k.name AND a.state = k.state
                    WHERE coalesce(c.n, 0) <> coalesce(a.n, 0) ORDER BY 1, 2, 3
                    """) {
                    CountMismatch(queue: $0.string(0), name: $0.string(1), state: $0.string(2), counted: $0.int(3), actual: $0.int(4))
                }
            }
        }
    }

    /// Rebuilds `task_counts`, and each batch's `total` and `finished`, from the tasks table, in one
    /// transaction; returns how many counts were wrong (rows of task_counts, batches).
    @discardableResult
    public func recount() throws -> Int {
        try write { db in
            let wrong = try db.scalarInt("""
                WITH actual(queue, name, state, n) AS (SELECT queue, name, state, count(*) FROM tasks GROUP BY 1, 2, 3)
                SELECT (SELECT count(*) FROM task_counts c WHERE c.n <> coalesce((SELECT a.n FROM actual a
                         WHERE a.queue = c.queue AND a.name = c.name AND a.state = c.state), 0))
                     + (SELECT count(*) FROM actual a WHERE NOT EXISTS (SELECT 1 FROM task_counts c
                         WHERE a.queue = c.queue AND a.name = c.name AND a.state = c.state))
                """) ?? 0
            try db.run("DELETE FROM task_counts")
            try db.run("INSERT INTO task_counts(queue, name, state, n) SELECT queue, name, state, count(*) FROM tasks GROUP BY 1, 2, 3")
            // Batches: a completion that comes due by the rebuilt figures fires as usual (batches_complete).
            let batches = try db.run(Self.batchActualSQL + """
                UPDATE batches SET total = coalesce(a.total, 0), finished = coalesce(a.finished, 0)
                FROM batches b LEFT JOIN actual a ON a.id = b.id
                WHERE batches.id = b.id AND (b.total <> coalesce(a.total, 0) OR b.finished <> coalesce(a.finished, 0))
                """)
            return Int(wrong) + batches
        }
    }
}
