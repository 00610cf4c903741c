import Foundation
import Logging
import PostgresNIO
import Rota

// MARK: Workers and leases

extension PostgresTaskStore {
    public func registerWorker(_ worker: WorkerRecord) async throws {
        try await write { [logger] connection in
            try await connection.run("""
                INSERT INTO rota_workers(id, host, pid, queues, task_names, concurrency, started_at, heartbeat_at, stopped_at)
                VALUES (\(worker.id), \(worker.host), \(Int(worker.pid)), \(worker.queues), \(worker.taskNames),
                        \(worker.concurrency), \(worker.startedAt.unixMillis), \(worker.heartbeatAt.unixMillis), NULL)
                ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
                    task_names = excluded.task_names, concurrency = excluded.concurrency,
                    heartbeat_at = excluded.heartbeat_at, stopped_at = NULL
                """, logger)
        }
    }

    public func heartbeat(worker: String, now: Date, leaseUntil: Date) async throws -> [TaskID] {
        try await write { [logger] connection in
            try await connection.run("UPDATE rota_workers SET heartbeat_at = \(now.unixMillis) WHERE id = \(worker)", logger)
            // Only leases the worker still holds are extended (a recovered task has another owner, or none).
            return try await connection.rows("""
                UPDATE rota_tasks SET lease_until = \(leaseUntil.unixMillis)
                WHERE state = 'running' AND lease_owner = \(worker)
                RETURNING id, cancel_requested
                """, logger) { (try $0.int64(0), try $0.bool(1)) }.filter(\.1).map(\.0).sorted()
        }
    }

    public func stopWorker(_ id: String, at: Date) async throws {
        try await write { [logger] connection in
            try await connection.run("""
                UPDATE rota_workers SET stopped_at = \(at.unixMillis), heartbeat_at = greatest(heartbeat_at, \(at.unixMillis))
                WHERE id = \(id)
                """, logger)
        }
    }

    public func workers() async throws -> [WorkerRecord] {
        try await read { [logger] connection in try await Self.workers(connection, logger) }
    }

    static func workers(_ connection: PostgresConnection, _ logger: Logger) async throws -> [WorkerRecord] {
        try await connection.rows("""
            SELECT id, host, pid, queues, task_names, concurrency, started_at, heartbeat_at, stopped_at
            FROM rota_workers ORDER BY heartbeat_at DESC, id
            """, logger) { row in
            WorkerRecord(id: try row.string(0), host: try row.string(1), pid: Int32(truncatingIfNeeded: try row.int64(2)),
                         queues: try row[3].decode([String].self), taskNames: try row[4].decode([String].self),
                         concurrency: try row.int(5), startedAt: try row.date(6), heartbeatAt: try row.date(7),
                         stoppedAt: try row.optionalDate(8))
        }
    }

    @discardableResult
    public func recoverExpiredLeases(now: Date) async throws -> [TaskID] {
        try await recover(condition: "lease_until < $1", reason: "'lease expired: worker ' || coalesce(t.lease_owner, '?') || ' stopped heartbeating'",
                          now: now, workers: nil, reasonText: nil)
    }

    @discardableResult
    public func recoverLeases(ofWorkers workers: [String], now: Date, reason: String) async throws -> [TaskID] {
        if workers.isEmpty { return [] }
        return try await recover(condition: "lease_owner = ANY($2::text[])", reason: "$3::text", now: now, workers: workers, reasonText: reason)
    }

    /// Gives running tasks matching `condition` a `lost` attempt and sends them back to `scheduled` (due
    /// now), or to `dead` at their poison limit, or to `cancelled` when a cancel was requested; one
    /// statement, so two schedulers recovering at once recover each task once (rows another is recovering
    /// are skipped). $1 is now; `reason` is an SQL expression over the old row `t`.
    private func recover(condition: String, reason: String, now: Date, workers: [String]?, reasonText: String?) async throws -> [TaskID] {
        var binds = PostgresBindings(capacity: 3)
        binds.append(now.unixMillis)
        if let workers, let reasonText {
            binds.append(workers)
            binds.append(reasonText)
        }
        let sql = """
            WITH lost AS MATERIALIZED (
                SELECT t.id, t.attempts, t.lease_owner, t.started_at, \(reason) AS reason
                FROM rota_tasks t WHERE t.state = 'running' AND t.\(condition)
                FOR UPDATE SKIP LOCKED),
            recovered AS (
                UPDATE rota_tasks t SET
                    state = CASE WHEN t.cancel_requested THEN 'cancelled'
                                 WHEN t.solo_losses + t.alone::int >= t.poison_limit THEN 'dead' ELSE 'scheduled' END,
                    finished_at = CASE WHEN t.cancel_requested OR t.solo_losses + t.alone::int >= t.poison_limit THEN $1 END,
                    last_error = CASE WHEN NOT t.cancel_requested AND t.solo_losses + t.alone::int >= t.poison_limit
                                      THEN 'poison: lost ' || (t.solo_losses + t.alone::int) || ' times while running alone on its worker '
                                           || '(poison limit ' || t.poison_limit || '); it likely crashes its worker process. Last: '
                                           || lost.reason
                                      ELSE lost.reason END,
                    losses = t.losses + 1, solo_losses = t.solo_losses + t.alone::int, alone = false,
                    max_attempts = t.max_attempts + 1,  -- a lost attempt does not use up the task's attempts
                    run_at = $1, lease_owner = NULL, lease_until = NULL, updated_at = $1
                FROM lost WHERE t.id = lost.id
                RETURNING t.id, t.queue, t.state),
            recorded AS (
                INSERT INTO rota_attempts(task_id, attempt, worker, started_at, finished_at, outcome, error)
                SELECT id, attempts, lease_owner, started_at, $1, 'lost', reason FROM lost
                ON CONFLICT DO NOTHING)
            SELECT id, queue, state FROM recovered ORDER BY id
            """
        return try await write { [logger, binds] connection in
            let rows = try await connection.rows(PostgresQuery(unsafeSQL: sql, binds: binds), logger) {
                (try $0.int64(0), try $0.string(1), try $0.string(2))
            }
            try await Self.notifyDue(rows.filter { $0.2 == "scheduled" }.map(\.1), connection, logger)
            return rows.map(\.0)
        }
    }

    public func markRunningAlone(_ task: TaskID, attempt: Int, worker: String) async throws -> Bool {
        try await write { [logger] connection in
            try await !connection.rows("""
                UPDATE rota_tasks SET alone = true
                WHERE id = \(task) AND attempts = \(attempt) AND lease_owner = \(worker) AND state = 'running'
                RETURNING id
                """, logger) { try $0.int64(0) }.isEmpty
        }
    }
}

// MARK: Operations

extension PostgresTaskStore {
    public func cancel(_ ids: [TaskID], now: Date) async throws -> [TaskID: CancelOutcome] {
        try await write { [logger] connection in
            let states = try await Self.lockStates(ids, connection, logger)
            var outcomes: [TaskID: CancelOutcome] = [:]
            for id in ids {
                guard let state = states[id] else {
                    outcomes[id] = .notFound
                    continue
                }
                switch state {
                case .scheduled:
                    try await connection.run("""
                        UPDATE rota_tasks SET state = 'cancelled', finished_at = \(now.unixMillis), updated_at = \(now.unixMillis),
                                              last_error = coalesce(last_error, 'cancelled')
                        WHERE id = \(id) AND state = 'scheduled'
                        """, logger)
                    outcomes[id] = .cancelled
                case .running:
                    try await connection.run("""
                        UPDATE rota_tasks SET cancel_requested = true, updated_at = \(now.unixMillis) WHERE id = \(id)
                        """, logger)
                    outcomes[id] = .requested
                default:
                    outcomes[id] = .notCancellable(state)
                }
            }
            return outcomes
        }
    }

    /// The states of `ids`, their rows locked until the transaction ends (no claim or completion can move
    /// them in between).
    static func lockStates(_ ids: [TaskID], _ connection: PostgresConnection, _ logger: Logger) async throws -> [TaskID: TaskState] {
        if ids.isEmpty { return [:] }
        var states: [TaskID: TaskState] = [:]
        for (id, state) in try await connection.rows("""
            SELECT id, state FROM rota_tasks WHERE id = ANY(\(ids)) ORDER BY id FOR UPDATE
            """, logger, { (try $0.int64(0), try $0.string(1)) }) {
            states[id] = TaskState(rawValue: state)
        }
        return states
    }

    /// Makes a task `scheduled` again, due at $1, with at least one more attempt; callers add the WHERE.
    static let retrySQL = """
        UPDATE rota_tasks SET state = 'scheduled', run_at = $1, updated_at = $1, finished_at = NULL, cancel_requested = false,
                              max_attempts = greatest(max_attempts, attempts + 1)
        """

    public func retry(_ ids: [TaskID], now: Date) async throws -> [TaskID: RetryOutcome] {
        try await write { [logger] connection in
            let states = try await Self.lockStates(ids, connection, logger)
            var outcomes: [TaskID: RetryOutcome] = [:]
            var retried: [TaskID] = []
            for id in ids {
                guard let state = states[id] else {
                    outcomes[id] = .notFound
                    continue
                }
                guard state == .dead || state == .cancelled else {
                    outcomes[id] = .notRetryable(state)
                    continue
                }
                retried.append(id)
                outcomes[id] = .rescheduled
            }
            if !retried.isEmpty {
                _ = try await Self.retried(Self.retrySQL + " WHERE id = ANY($2::bigint[])", Self.binds(now.unixMillis, retried),
                                           connection, logger)
            }
            return outcomes
        }
    }

    public func retryAll(state: TaskState, queue: String?, now: Date) async throws -> Int {
        guard state == .dead || state == .cancelled else {
            throw RotaError(.invalidInput, field: "state", "only dead or cancelled tasks can be retried, not \(state)")
        }
        // The state as a literal, so the partial index of that state applies.
        let sql = Self.retrySQL + " WHERE state = '\(state.rawValue)'" + (queue == nil ? "" : " AND queue = $2")
        let binds = queue.map { Self.binds(now.unixMillis, $0) } ?? Self.binds(now.unixMillis)
        return try await write { [logger] connection in
            try await Self.retried(sql, binds, connection, logger)
        }
    }

    public func purge(olderThan: Date, states: [TaskState]) async throws -> Int {
        let states = states.isEmpty ? [TaskState.succeeded, .dead, .cancelled] : states
        if let bad = states.first(where: { !$0.isTerminal }) {
            throw RotaError(.invalidInput, field: "state", "\(bad) tasks are never purged; only succeeded, dead or cancelled")
        }
        let names = states.map(\.rawValue)
        return try await write { [logger] connection in
            // Attempts have no foreign key (it would cost a query per attempt written): they go first, here.
            try await connection.rows("""
                WITH gone AS (
                    DELETE FROM rota_tasks WHERE finished_at < \(olderThan.unixMillis) AND state = ANY(\(names))
                    RETURNING id),
                attempts AS (DELETE FROM rota_attempts a USING gone WHERE a.task_id = gone.id)
                SELECT count(*) FROM gone
                """, logger) { try $0.int(0) }.first ?? 0
        }
    }

    /// Runs a retry statement (``retrySQL`` and its WHERE) and notifies the queues of the tasks it made due.
    /// - Returns: how many tasks it rescheduled.
    static func retried(_ sql: String, _ binds: PostgresBindings, _ connection: PostgresConnection, _ logger: Logger) async throws -> Int {
        let queues = try await connection.rows(PostgresQuery(
            unsafeSQL: "WITH r AS (" + sql + " RETURNING queue) SELECT queue, count(*) FROM r GROUP BY queue", binds: binds),
            logger) { (try $0.string(0), try $0.int(1)) }
        try await notifyDue(queues.map(\.0), connection, logger)
        return queues.reduce(0) { $0 + $1.1 }
    }

    /// Bindings from values, in order ($1, $2, …).
    static func binds(_ values: any PostgresDynamicTypeEncodable...) -> PostgresBindings {
        var binds = PostgresBindings(capacity: values.count)
        for value in values { binds.append(value) }
        return binds
    }
}

// MARK: Queries

extension PostgresTaskStore {
    static let taskColumns = """
        t.id, t.name, t.queue, t.payload, t.state, t.priority, t.run_at, t.attempts, t.max_attempts, t.timeout_ms,
        t.lease_owner, t.lease_until, t.started_at, t.cancel_requested, t.unique_key, b.name, t.batch_item,
        t.schedule, t.fire_at, t.created_at, t.updated_at, t.finished_at, t.last_error,
        (SELECT a.result FROM rota_attempts a WHERE a.task_id = t.id AND a.outcome = 'succeeded' ORDER BY a.attempt DESC LIMIT 1),
        t.losses, t.solo_losses, t.poison_limit
        FROM rota_tasks t LEFT JOIN rota_batches b ON b.id = t.batch_id
        """

    static func taskRecord(_ row: PostgresRandomAccessRow) throws -> TaskRecord {
        TaskRecord(
            id: try row.int64(0), name: try row.string(1), queue: try row.string(2), payload: try row.string(3),
            state: TaskState(rawValue: try row.string(4)) ?? .scheduled, priority: try row.int(5),
            runAt: try row.date(6), attempts: try row.int(7), maxAttempts: try row.int(8),
            timeout: try row.optionalInt64(9).map { .milliseconds($0) }, leaseOwner: try row.optionalString(10),
            leaseUntil: try row.optionalDate(11), startedAt: try row.optionalDate(12), cancelRequested: try row.bool(13),
            uniqueKey: try row.optionalString(14), batch: try row.optionalString(15), batchItem: try row.optionalString(16),
            schedule: try row.optionalString(17), fireAt: try row.optionalDate(18), createdAt: try row.date(19),
            updatedAt: try row.date(20), finishedAt: try row.optionalDate(21), lastError: try row.optionalString(22),
            result: try row.optionalString(23), losses: try row.int(24), soloLosses: try row.int(25), poisonLimit: try row.int(26))
    }

    public func task(_ id: TaskID) async throws -> TaskRecord? {
        try await read { [logger] connection in
            try await connection.rows(PostgresQuery(unsafeSQL: "SELECT \(Self.taskColumns) WHERE t.id = $1", binds: Self.binds(id)),
                                      logger, Self.taskRecord).first
        }
    }

    public func attempts(of id: TaskID) async throws -> [AttemptRecord] {
        try await read { [logger] connection in
            try await connection.rows("""
                SELECT task_id, attempt, worker, started_at, finished_at, outcome, error, result
                FROM rota_attempts WHERE task_id = \(id) ORDER BY attempt
                """, logger) { row in
                AttemptRecord(taskID: try row.int64(0), attempt: try row.int(1), worker: try row.optionalString(2),
                              startedAt: try row.optionalDate(3), finishedAt: try row.date(4),
                              outcome: AttemptOutcome(rawValue: try row.string(5)) ?? .failed,
                              error: try row.optionalString(6), result: try row.optionalString(7))
            }
        }
    }

    public func list(_ filter: TaskFilter) async throws -> [TaskRecord] {
        var conditions: [String] = []
        var binds = PostgresBindings()
        func bind(_ value: some PostgresDynamicTypeEncodable) -> String {
            binds.append(value)
            return "$\(binds.count)"
        }
        if let queue = filter.queue { conditions.append("t.queue = \(bind(queue))") }
        if let name = filter.name { conditions.append("t.name = \(bind(name))") }
        if let batch = filter.batch { conditions.append("t.batch_id = (SELECT id FROM rota_batches WHERE name = \(bind(batch)))") }
        if let schedule = filter.schedule { conditions.append("t.schedule = \(bind(schedule))") }
        if let since = filter.createdSince { conditions.append("t.created_at >= \(bind(since.unixMillis))") }
        if let before = filter.beforeID { conditions.append("t.id < \(bind(before))") }
        let states = filter.states.reduce(into: [String]()) { if !$0.contains($1.rawValue) { $0.append($1.rawValue) } }
        if !states.isEmpty {
            // Each state as a literal, so its partial index (dead, cancelled, running, due) can serve it.
            conditions.append("(" + states.map { "t.state = '\($0)'" }.joined(separator: " OR ") + ")")
        }
        let limit = bind(max(0, filter.limit))
        let whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        let query = PostgresQuery(unsafeSQL: "SELECT \(Self.taskColumns)\(whereClause) ORDER BY t.id DESC LIMIT \(limit)", binds: binds)
        return try await read { [logger] connection in
            try await connection.rows(query, logger, Self.taskRecord)
        }
    }

    public func stats(now: Date) async throws -> StoreStats {
        let nowMs = now.unixMillis
        // One snapshot for every figure, while schedulers write.
        return try await write(isolation: " ISOLATION LEVEL REPEATABLE READ READ ONLY") { [logger] connection in
            var states: [TaskState: Int] = Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, 0) })
            var queues: [String: [TaskState: Int]] = [:]
            for (queue, state, count) in try await connection.rows(
                "SELECT queue, state, sum(n)::bigint FROM rota_task_counts GROUP BY queue, state", logger,
                { (try $0.string(0), try $0.string(1), try $0.int(2)) }) {
                guard let state = TaskState(rawValue: state) else { continue }
                states[state, default: 0] += count
                if count > 0 { queues[queue, default: [:]][state] = count }
            }
            // The oldest due task: per queue with scheduled tasks, the first entries of the due index.
            var oldest: Int64?
            for queue in queues.filter({ ($0.value[.scheduled] ?? 0) > 0 }).keys.sorted() {
                if let value = try await connection.rows("""
                    SELECT min(run_at) FROM rota_tasks WHERE state = 'scheduled' AND queue = \(queue) AND run_at <= \(nowMs)
                    """, logger, { try $0.optionalInt64(0) }).first ?? nil {
                    oldest = min(oldest ?? value, value)
                }
            }
            let finished = try await connection.rows("""
                SELECT count(*) FILTER (WHERE finished_at >= \(nowMs - 60_000)), count(*)
                FROM rota_tasks WHERE finished_at >= \(nowMs - 3_600_000) AND state IN ('succeeded', 'dead')
                """, logger) { (try $0.int(0), try $0.int(1)) }.first ?? (0, 0)
            let byName = try await connection.rows("""
                SELECT name, sum(n)::bigint FROM rota_task_counts WHERE state = 'scheduled' GROUP BY name HAVING sum(n) > 0
                """, logger) { (try $0.string(0), try $0.int(1)) }
            return StoreStats(states: states, queues: queues, oldestDueAt: oldest.map { Date(unixMillis: $0) },
                              finishedLastMinute: finished.0, finishedLastHour: finished.1,
                              scheduledByName: Dictionary(byName, uniquingKeysWith: +))
        }
    }

    public func unhandledTasks(now: Date, batch: Int64?) async throws -> [UnhandledTasks] {
        try await write(isolation: " ISOLATION LEVEL REPEATABLE READ READ ONLY") { [logger] connection in
            let groups = try await connection.rows("""
                SELECT queue, name, sum(n)::bigint FROM rota_task_counts WHERE state = 'scheduled'
                GROUP BY queue, name HAVING sum(n) > 0 ORDER BY queue, name
                """, logger) { (try $0.string(0), try $0.string(1), try $0.int(2)) }
            if groups.isEmpty { return [] }
            let live = try await Self.workers(connection, logger).filter { $0.isLive(now: now) }
            let unhandled = UnhandledTasks.among(groups, live: live)
            guard let batch, !unhandled.isEmpty else { return unhandled }
            var inBatch: [String: [String: Int]] = [:]
            for (queue, name, count) in try await connection.rows("""
                SELECT queue, name, count(*) FROM rota_tasks WHERE batch_id = \(batch) AND state = 'scheduled' GROUP BY queue, name
                """, logger, { (try $0.string(0), try $0.string(1), try $0.int(2)) }) {
                inBatch[queue, default: [:]][name] = count
            }
            return UnhandledTasks.counted(unhandled, inBatch: inBatch)
        }
    }
}

// MARK: The cluster's leader

extension PostgresTaskStore: LeaderElecting {
    public func lead(worker: String, now: Date, until: Date) async throws -> Bool {
        try await write { [logger] connection in
            // Renewed by its holder; taken by another only once it lapsed (a dead leader is replaced within one
            // lease period).
            try await !connection.rows("""
                INSERT INTO rota_leader(id, leader, elected_at, expires_at) VALUES (1, \(worker), \(now.unixMillis), \(until.unixMillis))
                ON CONFLICT (id) DO UPDATE SET leader = excluded.leader, expires_at = excluded.expires_at,
                    elected_at = CASE WHEN rota_leader.leader = excluded.leader THEN rota_leader.elected_at ELSE excluded.elected_at END
                WHERE rota_leader.leader = excluded.leader OR rota_leader.expires_at <= \(now.unixMillis)
                RETURNING leader
                """, logger) { try $0.string(0) }.isEmpty
        }
    }

    public func resign(worker: String) async throws {
        try await write { [logger] connection in
            try await connection.run("DELETE FROM rota_leader WHERE leader = \(worker)", logger)
        }
    }

    public func leader() async throws -> (worker: String, until: Date)? {
        let row = try await read { [logger] connection in
            try await connection.rows("SELECT leader, expires_at FROM rota_leader", logger) { (try $0.string(0), try $0.int64(1)) }.first
        }
        return row.map { ($0.0, Date(unixMillis: $0.1)) }
    }
}
