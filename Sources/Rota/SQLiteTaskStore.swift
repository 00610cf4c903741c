import Foundation
import RotaSQLite

/// How hard a commit works to survive power loss.
public enum Durability: String, Sendable, CaseIterable {
    /// `synchronous=FULL`: an acknowledged enqueue or result survives power loss. The default.
    case full
    /// `synchronous=NORMAL`: survives a crash of the process (kill -9) but the last commits can be lost
    /// on power loss or an OS crash. Much faster for one-task transactions.
    case normal
}

/// The SQLite implementation of ``TaskStore``: one database file in WAL mode. All of Rota's SQL is here.
///
/// ```swift
/// let store = try SQLiteTaskStore(path: "rota.db")
/// let id = try await store.enqueue(TaskSpec(name: "exec", payload: #"{"argv":["echo","hi"]}"#)).id
/// ```
///
/// Calls are serialized on one connection; other processes (the CLI, other schedulers) open their own.
/// Every write is one `BEGIN IMMEDIATE` transaction.
public final class SQLiteTaskStore: TaskStore, @unchecked Sendable {
    /// How to open the database.
    public enum Access: Sendable {
        /// Read and write, creating the file (and applying migrations) when needed.
        case create
        /// Read and write an existing database; a missing file is an error.
        case existing
        /// Read only: every query works, every write fails. A missing file is an error.
        case readOnly
    }

    /// Options for the store.
    public struct Configuration: Sendable {
        /// How to open the file.
        public var access: Access
        /// `synchronous` FULL (default) or NORMAL.
        public var durability: Durability
        /// How long to wait for another process's write lock before failing with ``RotaError/Code/busy``.
        public var busyTimeout: Duration
        /// The largest payload accepted at enqueue, in bytes (1 MiB by default).
        public var maxPayloadBytes: Int
        /// Run `PRAGMA quick_check` at open (on by default for writers).
        public var quickCheck: Bool

        /// Creates a configuration.
        public init(access: Access = .create, durability: Durability = .full, busyTimeout: Duration = .seconds(5),
                    maxPayloadBytes: Int = 1 << 20, quickCheck: Bool = true) {
            self.access = access
            self.durability = durability
            self.busyTimeout = busyTimeout
            self.maxPayloadBytes = maxPayloadBytes
            self.quickCheck = quickCheck
        }
    }

    /// The database file's path.
    public let path: String
    /// The configuration it was opened with.
    public let configuration: Configuration
    private let lock = NSLock()
    private let db: Connection

    /// The migrations this binary carries (`migrations/*.sql`, embedded at build time).
    public static var migrations: [Migration] { EmbeddedMigrations.all }

    /// Opens the database at `path`, checks it and applies pending migrations.
    ///
    /// - Throws: ``RotaError`` `.database` when the file is not a SQLite database, is damaged, is read-only,
    ///   belongs to another application, or has a schema this binary refuses (newer, or a changed migration);
    ///   `.notFound` when `access` is not `.create` and there is no file. The file is left untouched.
    public init(path: String, configuration: Configuration = Configuration()) throws {
        self.path = path
        self.configuration = configuration
        do {
            if configuration.access != .create, !FileManager.default.fileExists(atPath: path) {
                throw RotaError(.notFound, "no Rota database at \(path) (create one with `rota migrate` or `rota enqueue`, or pass --db)")
            }
            let options = Connection.Options(
                mode: configuration.access == .readOnly ? .readOnly : (configuration.access == .create ? .readWriteCreate : .readWrite),
                synchronous: configuration.durability == .full ? .full : .normal,
                busyTimeout: configuration.busyTimeout,
                quickCheck: configuration.quickCheck)
            db = try Connection(path: path, options: options)
            let status = try Migrator.status(of: db, against: Self.migrations)
            if configuration.access == .readOnly {
                if !status.pending.isEmpty {
                    throw RotaError(.database, "\(path) needs migrations \(status.pending) before it can be read; run `rota migrate`")
                }
            } else {
                try db.enableWAL()
                try Migrator.migrate(db, with: Self.migrations)
            }
        } catch let error as RotaError {
            throw error
        } catch {
            throw RotaError.wrapping(error, path: path)
        }
    }

    // MARK: Plumbing

    /// Runs `body` on the connection under the store's lock, mapping SQLite errors to ``RotaError``.
    func read<T>(_ body: (Connection) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        do { return try body(db) } catch let error as RotaError { throw error } catch {
            throw RotaError.wrapping(error, path: path)
        }
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction under the store's lock.
    @discardableResult
    func write<T>(_ body: (Connection) throws -> T) throws -> T {
        try read { db in try db.transaction(.immediate) { try body(db) } }
    }

    static func now() -> Int64 { Date().unixMillis }

    // MARK: Validation

    /// Checks a spec; throws ``RotaError`` `.invalidInput` naming the field.
    func validate(_ spec: TaskSpec) throws {
        if spec.name.isBlank {
            throw RotaError(.invalidInput, field: "name", "must not be empty")
        }
        if spec.queue.isBlank {
            throw RotaError(.invalidInput, field: "queue", "must not be empty")
        }
        if spec.priority < 0 {
            throw RotaError(.invalidInput, field: "priority", "must be 0 or more (higher runs first), got \(spec.priority)")
        }
        if spec.maxAttempts < 1 {
            throw RotaError(.invalidInput, field: "max_attempts", "must be at least 1, got \(spec.maxAttempts)")
        }
        if let timeout = spec.timeout, timeout.milliseconds <= 0 {
            throw RotaError(.invalidInput, field: "timeout", "must be positive, got \(timeout)")
        }
        if let key = spec.uniqueKey, key.isEmpty {
            throw RotaError(.invalidInput, field: "unique_key", "must not be empty when given")
        }
        let size = spec.payload.utf8.count
        if size > configuration.maxPayloadBytes {
            throw RotaError(.invalidInput, field: "payload", "is \(size) bytes, over the limit of \(configuration.maxPayloadBytes) bytes")
        }
        try Self.validateJSON(spec.payload, field: "payload")
    }

    /// Throws ``RotaError`` `.invalidInput` unless `text` is one JSON value.
    static func validateJSON(_ text: String, field: String) throws {
        if let problem = JSONText.validate(text) {
            throw RotaError(.invalidInput, field: field, "is not valid JSON (\(problem)): \(text.prefix(80))")
        }
    }

    // MARK: Enqueue

    public func enqueue(_ spec: TaskSpec) async throws -> EnqueueResult {
        try enqueueSync([spec])[0]
    }

    public func enqueue(_ specs: [TaskSpec]) async throws -> [EnqueueResult] {
        try enqueueSync(specs)
    }

    /// Enqueues in one transaction (synchronous form, for callers outside Swift concurrency).
    public func enqueueSync(_ specs: [TaskSpec]) throws -> [EnqueueResult] {
        for (index, spec) in specs.enumerated() {
            do { try validate(spec) } catch let error as RotaError where specs.count > 1 {
                throw RotaError(error.code, field: error.field.map { "tasks[\(index)].\($0)" }, error.message)
            }
        }
        let now = Self.now()
        return try write { db in
            var results: [EnqueueResult] = []
            results.reserveCapacity(specs.count)
            let insert = try db.cached("""
                INSERT INTO tasks(name, queue, payload, priority, run_at, max_attempts, timeout_ms, unique_key,
                                  batch_id, batch_item, schedule, fire_at, created_at, updated_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)
                ON CONFLICT DO NOTHING
                """)
            for (index, spec) in specs.enumerated() {
                do {
                    try insert.run([
                        .text(spec.name), .text(spec.queue), .text(spec.payload), .integer(Int64(spec.priority)),
                        .integer(spec.runAt?.unixMillis ?? now), .integer(Int64(spec.maxAttempts)),
                        .int(spec.timeout?.milliseconds), .string(spec.uniqueKey), .int(spec.batchID),
                        .string(spec.batchItem), .string(spec.schedule), .int(spec.fireAt?.unixMillis), .integer(now),
                    ])
                } catch let error as SQLiteError where error.extendedCode == 787 /* SQLITE_CONSTRAINT_FOREIGNKEY */ {
                    // batch_id is the only foreign key of tasks.
                    throw RotaError(.invalidInput, field: specs.count > 1 ? "tasks[\(index)].batch_id" : "batch_id",
                                    "no batch has id \(spec.batchID.map(String.init) ?? "nil")", underlying: error)
                }
                if db.changes == 1 {
                    results.append(EnqueueResult(id: db.lastInsertRowID, inserted: true))
                } else if let existing = try existingTask(db, for: spec) {
                    results.append(EnqueueResult(id: existing, inserted: false))
                } else {
                    throw RotaError(.database, "enqueue of \(spec.name) conflicted but no existing task was found")
                }
            }
            return results
        }
    }

    private func existingTask(_ db: Connection, for spec: TaskSpec) throws -> TaskID? {
        if let key = spec.uniqueKey, let id = try db.scalarInt("SELECT id FROM tasks WHERE unique_key = ?", [.text(key)]) {
            return id
        }
        if let batch = spec.batchID, let item = spec.batchItem,
           let id = try db.scalarInt("SELECT id FROM tasks WHERE batch_id = ? AND batch_item = ?", [.integer(batch), .text(item)]) {
            return id
        }
        if let schedule = spec.schedule, let fire = spec.fireAt,
           let id = try db.scalarInt("SELECT id FROM tasks WHERE schedule = ? AND fire_at = ?", [.text(schedule), .integer(fire.unixMillis)]) {
            return id
        }
        return nil
    }

    // MARK: Claim and complete

    public func claim(_ requests: [ClaimRequest], worker: String, leaseUntil: Date, now: Date) async throws -> [ClaimedTask] {
        try claimSync(requests, worker: worker, leaseUntil: leaseUntil, now: now)
    }

    /// Claims due tasks (synchronous form).
    public func claimSync(_ requests: [ClaimRequest], worker: String, leaseUntil: Date, now: Date) throws -> [ClaimedTask] {
        let requests = requests.filter { $0.limit > 0 && $0.names?.isEmpty != true }
        if requests.isEmpty { return [] }
        let nowMs = now.unixMillis
        return try write { db in
            var claimed: [ClaimedTask] = []
            for request in requests {
                var values: [SQLiteValue] = [.text(worker), .integer(leaseUntil.unixMillis), .integer(nowMs),
                                             .text(request.queue), .integer(Int64(request.limit))]
                values += (request.names ?? []).map { .text($0) }
                let rows = try db.query(Self.claimSQL(nameCount: request.names?.count), values) { row in
                    ClaimedTask(id: row.int64(0), name: row.string(1), queue: row.string(2), payload: row.string(3),
                                attempt: row.int(4), maxAttempts: row.int(5),
                                timeout: row.optionalInt64(6).map { .milliseconds($0) }, priority: row.int(7),
                                runAt: Date(unixMillis: row.int64(8)), startedAt: now)
                }
                claimed += rows.sorted { ($0.priority, -$0.runAt.unixMillis, -$0.id) > ($1.priority, -$1.runAt.unixMillis, -$1.id) }
            }
            return claimed
        }
    }

    /// The claim statement for one queue: ?1 worker, ?2 lease_until, ?3 now, ?4 queue, ?5 limit, ?6… names
    /// (`nameCount` of them; nil claims any name). Internal so tests can pin its query plan.
    ///
    /// `INDEXED BY tasks_due` and the unary `+` on run_at pin the plan to walking the due index in
    /// (priority DESC, run_at) order and stopping at the limit. Without them, once `ANALYZE` (or
    /// `PRAGMA optimize`) has written statistics, SQLite picks `tasks_state` or a skip-scan on run_at and
    /// sorts the whole due backlog in a temp b-tree on every claim.
    static func claimSQL(nameCount: Int?) -> String {
        var sql = """
            UPDATE tasks SET state = 'running', attempts = attempts + 1, lease_owner = ?1, lease_until = ?2,
                             started_at = ?3, updated_at = ?3, cancel_requested = 0
            WHERE id IN (SELECT id FROM tasks INDEXED BY tasks_due
                         WHERE state = 'scheduled' AND queue = ?4 AND +run_at <= ?3
            """
        if let nameCount {
            let marks = (0..<nameCount).map { "?\($0 + 6)" }.joined(separator: ", ")
            sql += " AND name IN (\(marks))"
        }
        sql += """
             ORDER BY priority DESC, run_at LIMIT ?5)
            RETURNING id, name, queue, payload, attempts, max_attempts, timeout_ms, priority, run_at
            """
        return sql
    }

    @discardableResult
    public func complete(_ completions: [Completion]) async throws -> [Bool] {
        try completeSync(completions)
    }

    /// Records attempt ends in one transaction (synchronous form).
    @discardableResult
    public func completeSync(_ completions: [Completion]) throws -> [Bool] {
        if completions.isEmpty { return [] }
        return try write { db in
            var applied: [Bool] = []
            applied.reserveCapacity(completions.count)
            for completion in completions {
                let finished = completion.finishedAt.unixMillis
                let guardValues: [SQLiteValue] = [.integer(completion.taskID), .integer(Int64(completion.attempt)), .text(completion.worker)]
                let outcome: AttemptOutcome
                var error: String? = nil
                var result: String? = nil
                switch completion.resolution {
                case .succeeded(let value):
                    outcome = .succeeded
                    result = value
                    try db.run("""
                        UPDATE tasks SET state = 'succeeded', lease_owner = NULL, lease_until = NULL, finished_at = ?4, updated_at = ?4
                        WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running'
                        """, guardValues + [.integer(finished)])
                case .retry(let kind, let message, let runAt):
                    outcome = kind
                    error = message
                    // A cancel requested while the attempt ran wins over the retry (the next claim would clear it).
                    try db.run("""
                        UPDATE tasks SET state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'scheduled' END,
                                         finished_at = CASE WHEN cancel_requested = 1 THEN ?6 END,
                                         lease_owner = NULL, lease_until = NULL, run_at = ?4,
                                         last_error = ?5, updated_at = ?6
                        WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running'
                        """, guardValues + [.integer(runAt.unixMillis), .text(message), .integer(finished)])
                case .dead(let kind, let message):
                    outcome = kind
                    error = message
                    try db.run("""
                        UPDATE tasks SET state = 'dead', lease_owner = NULL, lease_until = NULL, finished_at = ?4,
                                         last_error = ?5, updated_at = ?4
                        WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running'
                        """, guardValues + [.integer(finished), .text(message)])
                case .cancelled(let reason):
                    outcome = .cancelled
                    error = reason
                    try db.run("""
                        UPDATE tasks SET state = 'cancelled', lease_owner = NULL, lease_until = NULL, finished_at = ?4,
                                         last_error = ?5, updated_at = ?4
                        WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running'
                        """, guardValues + [.integer(finished), .text(reason)])
                case .handBack(let reason):
                    outcome = .cancelled
                    error = reason
                    try db.run("""
                        UPDATE tasks SET state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'scheduled' END,
                                         finished_at = CASE WHEN cancel_requested = 1 THEN ?4 END,
                                         lease_owner = NULL, lease_until = NULL, run_at = ?4, updated_at = ?4,
                                         max_attempts = max_attempts + 1  -- a shutdown does not use up an attempt
                        WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running'
                        """, guardValues + [.integer(finished)])
                }
                guard db.changes == 1 else {
                    applied.append(false)
                    continue
                }
                try db.run("""
                    INSERT INTO attempts(task_id, attempt, worker, started_at, finished_at, outcome, error, result)
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING
                    """, [.integer(completion.taskID), .integer(Int64(completion.attempt)), .text(completion.worker),
                          .integer(completion.startedAt.unixMillis), .integer(finished), .text(outcome.rawValue),
                          .string(error), .string(result)])
                applied.append(true)
            }
            return applied
        }
    }

    public func nextRunAt(queues: [String], names: [String]?) async throws -> Date? {
        if names?.isEmpty == true { return nil } // like claim: no handler, nothing to claim
        let sql = Self.nextRunAtSQL(nameCount: names?.count)
        let nameValues: [SQLiteValue] = (names ?? []).map { .text($0) }
        return try read { db in
            var earliest: Int64?
            for queue in queues {
                if let value = try db.scalarInt(sql, [.text(queue)] + nameValues) {
                    earliest = min(earliest ?? value, value)
                }
            }
            return earliest.map { Date(unixMillis: $0) }
        }
    }

    /// The earliest `run_at` of a queue's scheduled tasks: ?1 queue, ?2… names (`nameCount` of them; nil: any).
    static func nextRunAtSQL(nameCount: Int?) -> String {
        var sql = "SELECT min(run_at) FROM tasks INDEXED BY tasks_due WHERE state = 'scheduled' AND queue = ?1"
        if let nameCount {
            sql += " AND name IN (\((0..<nameCount).map { "?\($0 + 2)" }.joined(separator: ", ")))"
        }
        return sql
    }

    // MARK: Workers and leases

    public func registerWorker(_ worker: WorkerRecord) async throws {
        let queues = try Self.jsonArray(worker.queues)
        let names = try Self.jsonArray(worker.taskNames)
        try write { db in
            try db.run("""
                INSERT INTO workers(id, host, pid, queues, task_names, concurrency, started_at, heartbeat_at, stopped_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL)
                ON CONFLICT(id) DO UPDATE SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
                    task_names = excluded.task_names, concurrency = excluded.concurrency,
                    heartbeat_at = excluded.heartbeat_at, stopped_at = NULL
                """, [.text(worker.id), .text(worker.host), .integer(Int64(worker.pid)), .text(queues), .text(names),
                      .integer(Int64(worker.concurrency)), .integer(worker.startedAt.unixMillis),
                      .integer(worker.heartbeatAt.unixMillis)])
        }
    }

    public func heartbeat(worker: String, now: Date, leaseUntil: Date) async throws -> [TaskID] {
        try write { db in
            try db.run("UPDATE workers SET heartbeat_at = ?2 WHERE id = ?1", [.text(worker), .integer(now.unixMillis)])
            try db.run("UPDATE tasks SET lease_until = ?2 WHERE state = 'running' AND lease_owner = ?1",
                       [.text(worker), .integer(leaseUntil.unixMillis)])
            return try db.query("SELECT id FROM tasks WHERE state = 'running' AND lease_owner = ? AND cancel_requested = 1",
                                [.text(worker)]) { $0.int64(0) }
        }
    }

    public func stopWorker(_ id: String, at: Date) async throws {
        try write { db in
            try db.run("UPDATE workers SET stopped_at = ?2, heartbeat_at = max(heartbeat_at, ?2) WHERE id = ?1",
                       [.text(id), .integer(at.unixMillis)])
        }
    }

    public func workers() async throws -> [WorkerRecord] {
        try read { db in
            try db.query("""
                SELECT id, host, pid, queues, task_names, concurrency, started_at, heartbeat_at, stopped_at
                FROM workers ORDER BY heartbeat_at DESC, id
                """) { row in
                WorkerRecord(id: row.string(0), host: row.string(1), pid: Int32(truncatingIfNeeded: row.int64(2)),
                             queues: Self.decodeArray(row.string(3)), taskNames: Self.decodeArray(row.string(4)),
                             concurrency: row.int(5), startedAt: Date(unixMillis: row.int64(6)),
                             heartbeatAt: Date(unixMillis: row.int64(7)),
                             stoppedAt: row.optionalInt64(8).map { Date(unixMillis: $0) })
            }
        }
    }

    @discardableResult
    public func recoverExpiredLeases(now: Date) async throws -> [TaskID] {
        try recover(condition: "lease_until < ?1", values: [.integer(now.unixMillis)],
                    error: "'lease expired: worker ' || coalesce(lease_owner, '?') || ' stopped heartbeating'", now: now)
    }

    @discardableResult
    public func recoverLeases(ofWorkers workers: [String], now: Date, reason: String) async throws -> [TaskID] {
        if workers.isEmpty { return [] }
        return try recover(condition: "lease_owner IN (SELECT value FROM json_each(?2))",
                           values: [.integer(now.unixMillis), .text(try Self.jsonArray(workers)), .text(reason)],
                           error: "?3", now: now)
    }

    /// Gives running tasks matching `condition` a `lost` attempt and sends them back to `scheduled`
    /// (due now) or to `dead` past their max attempts (`cancelled` if a cancel was requested). ?1 is now.
    private func recover(condition: String, values: [SQLiteValue], error: String, now: Date) throws -> [TaskID] {
        try write { db in
            try db.run("""
                INSERT INTO attempts(task_id, attempt, worker, started_at, finished_at, outcome, error)
                SELECT id, attempts, lease_owner, started_at, ?1, 'lost', \(error)
                FROM tasks WHERE state = 'running' AND \(condition)
                ON CONFLICT DO NOTHING
                """, values)
            return try db.query("""
                UPDATE tasks SET
                    state = CASE WHEN cancel_requested = 1 THEN 'cancelled'
                                 WHEN attempts >= max_attempts THEN 'dead' ELSE 'scheduled' END,
                    finished_at = CASE WHEN cancel_requested = 1 OR attempts >= max_attempts THEN ?1 END,
                    last_error = \(error), run_at = ?1, lease_owner = NULL, lease_until = NULL, updated_at = ?1
                WHERE state = 'running' AND \(condition)
                RETURNING id
                """, values) { $0.int64(0) }
        }
    }

    // MARK: Operations

    public func cancel(_ ids: [TaskID], now: Date) async throws -> [TaskID: CancelOutcome] {
        try write { db in
            var outcomes: [TaskID: CancelOutcome] = [:]
            for id in ids {
                guard let raw = try db.queryFirst("SELECT state FROM tasks WHERE id = ?", [.integer(id)], { $0.string(0) }),
                      let state = TaskState(rawValue: raw) else {
                    outcomes[id] = .notFound
                    continue
                }
                switch state {
                case .scheduled:
                    try db.run("""
                        UPDATE tasks SET state = 'cancelled', finished_at = ?2, updated_at = ?2, last_error = coalesce(last_error, 'cancelled')
                        WHERE id = ?1
                        """, [.integer(id), .integer(now.unixMillis)])
                    outcomes[id] = .cancelled
                case .running:
                    try db.run("UPDATE tasks SET cancel_requested = 1, updated_at = ?2 WHERE id = ?1",
                               [.integer(id), .integer(now.unixMillis)])
                    outcomes[id] = .requested
                default:
                    outcomes[id] = .notCancellable(state)
                }
            }
            return outcomes
        }
    }

    public func retry(_ ids: [TaskID], now: Date) async throws -> [TaskID: RetryOutcome] {
        try write { db in
            var outcomes: [TaskID: RetryOutcome] = [:]
            for id in ids {
                guard let raw = try db.queryFirst("SELECT state FROM tasks WHERE id = ?", [.integer(id)], { $0.string(0) }),
                      let state = TaskState(rawValue: raw) else {
                    outcomes[id] = .notFound
                    continue
                }
                guard state == .dead || state == .cancelled else {
                    outcomes[id] = .notRetryable(state)
                    continue
                }
                try db.run(Self.retrySQL + " WHERE id = ?2", [.integer(now.unixMillis), .integer(id)])
                outcomes[id] = .rescheduled
            }
            return outcomes
        }
    }

    private static let retrySQL = """
        UPDATE tasks SET state = 'scheduled', run_at = ?1, updated_at = ?1, finished_at = NULL, cancel_requested = 0,
                         max_attempts = max(max_attempts, attempts + 1)
        """

    public func retryAll(state: TaskState, queue: String?, now: Date) async throws -> Int {
        guard state == .dead || state == .cancelled else {
            throw RotaError(.invalidInput, field: "state", "only dead or cancelled tasks can be retried, not \(state)")
        }
        return try write { db in
            if let queue {
                return try db.run(Self.retrySQL + " WHERE state = ?2 AND queue = ?3",
                                  [.integer(now.unixMillis), .text(state.rawValue), .text(queue)])
            }
            return try db.run(Self.retrySQL + " WHERE state = ?2", [.integer(now.unixMillis), .text(state.rawValue)])
        }
    }

    public func purge(olderThan: Date, states: [TaskState]) async throws -> Int {
        let states = states.isEmpty ? [TaskState.succeeded, .dead, .cancelled] : states
        if let bad = states.first(where: { !$0.isTerminal }) {
            throw RotaError(.invalidInput, field: "state", "\(bad) tasks are never purged; only succeeded, dead or cancelled")
        }
        let list = try Self.jsonArray(states.map(\.rawValue))
        return try write { db in
            try db.run("DELETE FROM tasks WHERE finished_at < ?1 AND state IN (SELECT value FROM json_each(?2))",
                       [.integer(olderThan.unixMillis), .text(list)])
        }
    }

    // MARK: Queries

    private static let taskColumns = """
        t.id, t.name, t.queue, t.payload, t.state, t.priority, t.run_at, t.attempts, t.max_attempts, t.timeout_ms,
        t.lease_owner, t.lease_until, t.started_at, t.cancel_requested, t.unique_key, b.name, t.batch_item,
        t.schedule, t.fire_at, t.created_at, t.updated_at, t.finished_at, t.last_error,
        (SELECT a.result FROM attempts a WHERE a.task_id = t.id AND a.outcome = 'succeeded' ORDER BY a.attempt DESC LIMIT 1)
        FROM tasks t LEFT JOIN batches b ON b.id = t.batch_id
        """

    private static func taskRecord(_ row: Statement) -> TaskRecord {
        func date(_ index: Int32) -> Date? { row.optionalInt64(index).map { Date(unixMillis: $0) } }
        return TaskRecord(
            id: row.int64(0), name: row.string(1), queue: row.string(2), payload: row.string(3),
            state: TaskState(rawValue: row.string(4)) ?? .scheduled, priority: row.int(5),
            runAt: Date(unixMillis: row.int64(6)), attempts: row.int(7), maxAttempts: row.int(8),
            timeout: row.optionalInt64(9).map { .milliseconds($0) }, leaseOwner: row.optionalString(10),
            leaseUntil: date(11), startedAt: date(12), cancelRequested: row.int64(13) != 0,
            uniqueKey: row.optionalString(14), batch: row.optionalString(15), batchItem: row.optionalString(16),
            schedule: row.optionalString(17), fireAt: date(18), createdAt: Date(unixMillis: row.int64(19)),
            updatedAt: Date(unixMillis: row.int64(20)), finishedAt: date(21), lastError: row.optionalString(22),
            result: row.optionalString(23))
    }

    public func task(_ id: TaskID) async throws -> TaskRecord? {
        try read { db in
            try db.queryFirst("SELECT \(Self.taskColumns) WHERE t.id = ?", [.integer(id)], Self.taskRecord)
        }
    }

    public func attempts(of id: TaskID) async throws -> [AttemptRecord] {
        try read { db in
            try db.query("""
                SELECT task_id, attempt, worker, started_at, finished_at, outcome, error, result
                FROM attempts WHERE task_id = ? ORDER BY attempt
                """, [.integer(id)]) { row in
                AttemptRecord(taskID: row.int64(0), attempt: row.int(1), worker: row.optionalString(2),
                              startedAt: row.optionalInt64(3).map { Date(unixMillis: $0) },
                              finishedAt: Date(unixMillis: row.int64(4)),
                              outcome: AttemptOutcome(rawValue: row.string(5)) ?? .failed,
                              error: row.optionalString(6), result: row.optionalString(7))
            }
        }
    }

    public func list(_ filter: TaskFilter) async throws -> [TaskRecord] {
        var conditions: [String] = []
        var values: [SQLiteValue] = []
        func bind(_ value: SQLiteValue) -> String {
            values.append(value)
            return "?\(values.count)"
        }
        // One state: `state = ?` walks tasks_state backwards (rowid order within a state) and stops at the limit.
        // Several: filled in below, one such walk per state, merged (an IN over the index would sort every match).
        let statePlaceholders = filter.states.map { bind(.text($0.rawValue)) }
        if statePlaceholders.count == 1 { conditions.append("t.state = \(statePlaceholders[0])") }
        if let queue = filter.queue { conditions.append("t.queue = \(bind(.text(queue)))") }
        if let name = filter.name { conditions.append("t.name = \(bind(.text(name)))") }
        if let batch = filter.batch {
            conditions.append("t.batch_id = (SELECT id FROM batches WHERE name = \(bind(.text(batch))))")
        }
        if let schedule = filter.schedule { conditions.append("t.schedule = \(bind(.text(schedule)))") }
        if let since = filter.createdSince { conditions.append("t.created_at >= \(bind(.integer(since.unixMillis)))") }
        if let before = filter.beforeID { conditions.append("t.id < \(bind(.integer(before)))") }
        let limit = bind(.integer(Int64(max(0, filter.limit))))
        if statePlaceholders.count > 1 {
            let others = conditions.map { " AND " + $0 }.joined()
            let walks = statePlaceholders.map { state in
                "SELECT id FROM (SELECT t.id FROM tasks t WHERE t.state = \(state)\(others) ORDER BY t.id DESC LIMIT \(limit))"
            }
            conditions = ["t.id IN (\(walks.joined(separator: " UNION ALL ")))"]
        }
        let whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        let sql = "SELECT \(Self.taskColumns)\(whereClause) ORDER BY t.id DESC LIMIT \(limit)"
        return try read { db in
            // Ad-hoc filter combinations: prepare without caching to keep the cache small.
            let statement = try db.prepare(sql)
            try statement.bind(values)
            var rows: [TaskRecord] = []
            while try statement.step() { rows.append(Self.taskRecord(statement)) }
            return rows
        }
    }

    public func stats(now: Date) async throws -> StoreStats {
        let nowMs = now.unixMillis
        // Counts come from task_counts (kept by triggers, migration 0002): a few rows whatever the table's size.
        // One read transaction, so every figure is from the same snapshot while schedulers write.
        return try read { db in
            try db.transaction(.deferred) {
                var states: [TaskState: Int] = Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, 0) })
                var queues: [String: [TaskState: Int]] = [:]
                for (queue, state, count) in try db.query(
                    "SELECT queue, state, sum(n) FROM task_counts GROUP BY queue, state", [], { ($0.string(0), $0.string(1), $0.int(2)) }) {
                    guard let state = TaskState(rawValue: state) else { continue }
                    states[state, default: 0] += count
                    if count > 0 { queues[queue, default: [:]][state] = count }
                }
                let oldest = try db.scalarInt(
                    "SELECT min(run_at) FROM tasks INDEXED BY tasks_scheduled_run_at WHERE state = 'scheduled' AND run_at <= ?",
                    [.integer(nowMs)])
                let finishedSQL = """
                    SELECT count(*) FROM tasks INDEXED BY tasks_finished
                    WHERE finished_at >= ? AND finished_at IS NOT NULL AND state IN ('succeeded', 'dead')
                    """
                let minute = try db.scalarInt(finishedSQL, [.integer(nowMs - 60_000)]) ?? 0
                let hour = try db.scalarInt(finishedSQL, [.integer(nowMs - 3_600_000)]) ?? 0
                let byName = try db.query(
                    "SELECT name, sum(n) FROM task_counts WHERE state = 'scheduled' GROUP BY name HAVING sum(n) > 0", [],
                    { ($0.string(0), $0.int(1)) })
                return StoreStats(states: states, queues: queues, oldestDueAt: oldest.map { Date(unixMillis: $0) },
                                  finishedLastMinute: Int(minute), finishedLastHour: Int(hour),
                                  scheduledByName: Dictionary(byName, uniquingKeysWith: +))
            }
        }
    }

    // MARK: Maintenance (SQLite-specific)

    /// The result of `PRAGMA integrity_check`: `["ok"]` for a sound database.
    public func integrityCheck() throws -> [String] {
        try read { db in try db.query("PRAGMA integrity_check", [], { $0.string(0) }) }
    }

    /// The highest migration applied, and the highest this binary knows.
    public func schemaVersion() throws -> (applied: Int, known: Int) {
        try read { db in
            let status = try Migrator.status(of: db, against: Self.migrations)
            return (status.appliedVersion, status.knownVersion)
        }
    }

    /// The size of the `-wal` file in bytes (0 when there is none).
    public func walSizeBytes() -> Int64 {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path + "-wal")
        return (attributes?[.size] as? NSNumber)?.int64Value ?? 0
    }

    /// Runs `body` with the store's connection, under its lock. For the store's own extensions
    /// (batches, schedules) and tests; all SQL stays in this module.
    func withConnection<T>(_ body: (Connection) throws -> T) throws -> T { try read(body) }

    // MARK: JSON helpers

    static func jsonArray(_ values: [String]) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: values, options: [])
        return String(decoding: data, as: UTF8.self)
    }

    static func decodeArray(_ text: String) -> [String] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String] ?? []
    }
}

extension String {
    /// True when the string is empty or only whitespace (fast: no Foundation bridging).
    public var isBlank: Bool { !unicodeScalars.contains { !$0.properties.isWhitespace } }
}
