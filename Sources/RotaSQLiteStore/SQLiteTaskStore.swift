import Foundation
import Rota
import RotaSQLite
import Synchronization

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
/// Every write is one `BEGIN IMMEDIATE` transaction. Async calls run on the store's own serial queue (as
/// GRDB does), so waiting for another process's write lock never holds a thread of Swift's cooperative
/// pool; the `...Sync` forms and ``completeAndClaimBlocking(_:_:worker:leaseUntil:now:)`` block their caller.
public final class SQLiteTaskStore: TaskStore, ClaimTurnBlocking, @unchecked Sendable {
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
    /// Write transactions committed (see ``commitCount``), and the background checkpointers to wake after one.
    private let commits = Atomic<Int>(0)
    let checkpointers = Mutex<[BackgroundCheckpointer]>([])
    /// Where async calls run: a serial queue of the store's own, off the cooperative pool.
    private let queue = DispatchQueue(label: "rota.sqlite-store")
    /// Claim statements' SQL by name count (-1: any name), built once. Guarded by `lock`.
    private var claimSQLByNameCount: [Int: String] = [:]

    /// The migrations this binary carries (`migrations/*.sql`, embedded at build time).
    public static let migrations: [Migration] = EmbeddedMigrations.all.map { Migration(version: $0.version, name: $0.name, sql: $0.sql) }

    /// Opens the database at `path`, checks it and applies pending migrations.
    ///
    /// A database file it creates is readable and writable by its owner only (mode 0600, as crontabs in
    /// cron's spool), and so are its `-wal` and `-shm` files, which SQLite creates with the database's mode.
    /// An existing file keeps its mode.
    ///
    /// - Throws: ``RotaError`` `.database` when the file is not a SQLite database, is damaged, is read-only,
    ///   belongs to another application, or has a schema this binary refuses (newer, or a changed migration);
    ///   `.notFound` when `access` is not `.create` and there is no file. The file is left untouched.
    public init(path: String, configuration: Configuration = Configuration()) throws {
        self.path = path
        self.configuration = configuration
        do {
            if configuration.access != .create, !FileManager.default.fileExists(atPath: path) {
                throw RotaError(.notFound, "no Rota database at \(path)")
            }
            let directory = (path as NSString).deletingLastPathComponent
            var isDirectory: ObjCBool = false
            if configuration.access == .create, !directory.isEmpty,
               !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) || !isDirectory.boolValue {
                throw RotaError(.database, "cannot create the database \(path): \(directory) is not a directory Rota can reach (missing, a file, or not searchable)")
            }
            let options = Connection.Options(
                mode: configuration.access == .readOnly ? .readOnly : (configuration.access == .create ? .readWriteCreate : .readWrite),
                synchronous: configuration.durability == .full ? .full : .normal,
                busyTimeout: configuration.busyTimeout,
                quickCheck: configuration.quickCheck,
                newFileMode: 0o600)  // it holds commands, payloads and their output: the owner's only
            db = try Connection(path: path, options: options)
            let status = try Migrator.status(of: db, against: Self.migrations)
            if configuration.access == .readOnly {
                if !status.pending.isEmpty {
                    throw RotaError(.database, "\(path) needs migrations \(status.pending) before it can be read; migrate it first")
                }
            } else {
                try db.enableWAL()
                try Self.refuseCountingUpgradeUnderLiveWorkers(db, status: status, path: path)
                try Migrator.migrate(db, with: Self.migrations)
            }
        } catch let error as RotaError {
            throw error
        } catch {
            throw RotaError.wrapping(error, path: path)
        }
    }

    /// Migrations 3, 5, 6 and 7 hand the counting of claims and successes (3), of inserted tasks (5) and of
    /// batch items (7) from triggers to the store, and make the triggers watch other columns (6): a
    /// scheduler of an older binary still running on the file would leave changes uncounted (and, after 6,
    /// batches unfinished). So they are applied only while no worker is live (stopped ones, and ones whose
    /// heartbeat is older than the liveness window, are fine).
    private static func refuseCountingUpgradeUnderLiveWorkers(_ db: Connection, status: Migrator.Status, path: String) throws {
        guard status.appliedVersion >= 1,
              let step = [3, 5, 6, 7].first(where: { status.appliedVersion < $0 && status.pending.contains($0) }) else { return }
        let since = Date().unixMillis - WorkerRecord.livenessWindow.milliseconds
        let live = try db.query("SELECT id FROM workers WHERE stopped_at IS NULL AND heartbeat_at >= ?", [.integer(since)]) {
            $0.string(0)
        }
        if !live.isEmpty {
            throw RotaError(.database, """
                \(path) needs migration \(step), which changes how task counts are kept, but schedulers of an older \
                Rota are running on it (\(live.joined(separator: ", "))); stop them, then migrate it
                """)
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
        let result = try read { db in try db.transaction(.immediate) { try body(db) } }
        commits.add(1, ordering: .sequentiallyConsistent)
        for checkpointer in checkpointers.withLock({ $0 }) { checkpointer.poke() }
        return result
    }

    /// How many write transactions this store committed (the background checkpointer skips a pass when
    /// none came since its last).
    var commitCount: Int { commits.load(ordering: .sequentiallyConsistent) }

    static func now() -> Int64 { Date().unixMillis }

    /// Runs `body` on the store's serial queue and returns its result: async callers never block a thread
    /// of the cooperative pool on SQLite (its busy timeout can be seconds).
    @discardableResult
    func io<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        // The body (which holds the store) is released before the caller resumes, so a store dropped right
        // after its last call closes (and checkpoints) before the caller goes on, as with a direct call.
        let work = OnceWork(body)
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work.run() }) }
        }
    }

    /// A closure run once and released as it returns.
    private final class OnceWork<T: Sendable>: @unchecked Sendable {
        private var body: (@Sendable () throws -> T)?
        init(_ body: @escaping @Sendable () throws -> T) { self.body = body }
        /// Runs on the store's queue only, once.
        func run() throws -> T {
            let body = self.body!
            self.body = nil
            return try body()
        }
    }

    /// The largest payload accepted at enqueue (``Configuration/maxPayloadBytes``).
    public var maxPayloadBytes: Int { configuration.maxPayloadBytes }

    // MARK: Enqueue

    public func enqueue(validated specs: ValidatedSpecs) async throws -> [EnqueueResult] {
        try await io { [self] in try insert(specs.specs) }
    }

    /// Enqueues in one transaction (synchronous form, for callers outside Swift concurrency).
    /// - Throws: ``RotaError`` `.invalidInput` naming the field (nothing written), `.busy`, `.full`.
    public func enqueueSync(_ specs: [TaskSpec]) throws -> [EnqueueResult] {
        try insert(ValidatedSpecs(specs, maxPayloadBytes: maxPayloadBytes).specs)
    }

    /// Inserts validated specs in one transaction.
    private func insert(_ specs: [TaskSpec]) throws -> [EnqueueResult] {
        let now = Self.now()
        return try write { db in
            var results: [EnqueueResult] = []
            results.reserveCapacity(specs.count)
            // Tasks that cannot conflict (no unique key, batch item or schedule fire) go in multi-row INSERTs:
            // one statement's cursors on tasks and its indexes serve many rows. Holding the write lock, the
            // new rowids of one statement are consecutive (largest + 1 each), ending at last_insert_rowid.
            // The store counts the tasks it inserts (migration 5: no per-row trigger), and the items it adds to
            // each batch (migration 7), in this transaction.
            var inserted = TransitionCounts()
            var batchItems: [Int64: Int64] = [:]
            var start = 0
            if specs.count >= Self.insertChunk, specs.allSatisfy({ $0.uniqueKey == nil && $0.batchID == nil && $0.schedule == nil && $0.poisonLimit == nil }) {
                let statement = try db.cached(Self.insertChunkSQL)
                while specs.count - start >= Self.insertChunk {
                    statement.reset()
                    try statement.bind(now, at: 1)
                    for row in 0..<Self.insertChunk {
                        let spec = specs[start + row]
                        let base = Int32(1 + row * 7)
                        try statement.bind(spec.name, at: base + 1)
                        try statement.bind(spec.queue, at: base + 2)
                        try statement.bind(spec.payload, at: base + 3)
                        try statement.bind(Int64(spec.priority), at: base + 4)
                        try statement.bind(spec.runAt?.unixMillis ?? now, at: base + 5)
                        try statement.bind(Int64(spec.maxAttempts), at: base + 6)
                        try statement.bindInt(spec.timeout?.milliseconds, at: base + 7)
                    }
                    try statement.execute()
                    guard db.changes == Self.insertChunk else {
                        throw RotaError(.database, "a multi-row enqueue inserted \(db.changes) of \(Self.insertChunk) tasks")
                    }
                    let last = db.lastInsertRowID
                    for row in 0..<Int64(Self.insertChunk) {
                        results.append(EnqueueResult(id: last - Int64(Self.insertChunk) + 1 + row, inserted: true))
                    }
                    for spec in specs[start ..< start + Self.insertChunk] { inserted.add(queue: spec.queue, name: spec.name) }
                    start += Self.insertChunk
                }
            }
            let insert = try db.cached(Self.insertSQL)
            for (index, spec) in specs.enumerated().dropFirst(start) {
                do {
                    // Typed binds: no [SQLiteValue] array per row. Every parameter is bound each time.
                    insert.reset()
                    try insert.bind(spec.name, at: 1)
                    try insert.bind(spec.queue, at: 2)
                    try insert.bind(spec.payload, at: 3)
                    try insert.bind(Int64(spec.priority), at: 4)
                    try insert.bind(spec.runAt?.unixMillis ?? now, at: 5)
                    try insert.bind(Int64(spec.maxAttempts), at: 6)
                    try insert.bindInt(spec.timeout?.milliseconds, at: 7)
                    try insert.bind(spec.uniqueKey, at: 8)
                    try insert.bindInt(spec.batchID, at: 9)
                    try insert.bind(spec.batchItem, at: 10)
                    try insert.bind(spec.schedule, at: 11)
                    try insert.bindInt(spec.fireAt?.unixMillis, at: 12)
                    try insert.bind(now, at: 13)
                    try insert.bindInt(spec.poisonLimit.map(Int64.init), at: 14)
                    try insert.execute()
                } catch let error as SQLiteError where error.extendedCode == 787 /* SQLITE_CONSTRAINT_FOREIGNKEY */ {
                    // batch_id is the only foreign key of tasks.
                    throw RotaError(.invalidInput, field: specs.count > 1 ? "tasks[\(index)].batch_id" : "batch_id",
                                    "no batch has id \(spec.batchID.map(String.init) ?? "nil")", underlying: error)
                }
                if db.changes == 1 {
                    results.append(EnqueueResult(id: db.lastInsertRowID, inserted: true))
                    inserted.add(queue: spec.queue, name: spec.name)
                    if let batch = spec.batchID { batchItems[batch, default: 0] += 1 }
                } else if let existing = try existingTask(db, for: spec) {
                    results.append(EnqueueResult(id: existing, inserted: false))
                } else {
                    throw RotaError(.database, "enqueue of \(spec.name) conflicted but no existing task was found")
                }
            }
            try inserted.record(db, from: nil, to: .scheduled)
            for (batch, added) in batchItems {
                try db.run("UPDATE batches SET total = total + ?2 WHERE id = ?1", [.integer(batch), .integer(added)])
            }
            return results
        }
    }

    static let insertSQL = """
        INSERT INTO tasks(name, queue, payload, priority, run_at, max_attempts, timeout_ms, unique_key,
                          batch_id, batch_item, schedule, fire_at, created_at, updated_at, poison_limit)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, coalesce(?14, 2))
        ON CONFLICT DO NOTHING
        """

    /// Rows per multi-row INSERT of an enqueue.
    static let insertChunk = 32

    /// ?1 is now (created_at, updated_at); row k's name, queue, payload, priority, run_at, max_attempts and
    /// timeout_ms are ?(7k+2)…?(7k+8).
    static let insertChunkSQL = """
        INSERT INTO tasks(name, queue, payload, priority, run_at, max_attempts, timeout_ms, created_at, updated_at)
        VALUES \((0..<insertChunk).map { row in
            let base = 1 + row * 7
            return "(?\(base + 1), ?\(base + 2), ?\(base + 3), ?\(base + 4), ?\(base + 5), ?\(base + 6), ?\(base + 7), ?1, ?1)"
        }.joined(separator: ", "))
        """

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

    /// Claims due tasks (synchronous form).
    public func claimSync(_ requests: [ClaimRequest], worker: String, leaseUntil: Date, now: Date) throws -> [ClaimedTask] {
        try completeAndClaimBlocking([], requests, worker: worker, leaseUntil: leaseUntil, now: now).claimed
    }

    /// Claims inside the caller's transaction (`requests` already filtered). `filled` becomes true when a
    /// request claimed as many tasks as it could take (its limit, or what its budgets had left): more may be due.
    func claim(_ db: Connection, _ requests: [ClaimRequest], worker: String, leaseUntil: Date, now: Date,
               filled: inout Bool) throws -> [ClaimedTask] {
        let nowMs = now.unixMillis
        var claimed: [ClaimedTask] = []
        var budgets = ClaimBudgetLedger()
        for request in requests {
            let limit = budgets.limit(for: request)
            if limit <= 0 { continue }
            let nameCount = request.names?.count
            let sql: String
            if let known = claimSQLByNameCount[nameCount ?? -1] {
                sql = known
            } else {
                sql = Self.claimSQL(nameCount: nameCount)
                claimSQLByNameCount[nameCount ?? -1] = sql
            }
            let statement = try db.cached(sql)
            statement.reset()
            try statement.bind(worker, at: 1)
            try statement.bind(leaseUntil.unixMillis, at: 2)
            try statement.bind(nowMs, at: 3)
            try statement.bind(request.queue, at: 4)
            try statement.bind(Int64(limit), at: 5)
            for (offset, name) in (request.names ?? []).enumerated() { try statement.bind(name, at: Int32(6 + offset)) }
            var rows: [ClaimedTask] = []
            rows.reserveCapacity(limit)
            defer { statement.reset() }
            while try statement.step() {
                let row = statement
                rows.append(ClaimedTask(id: row.int64(0), name: row.string(1), queue: row.string(2), payload: row.string(3),
                            attempt: row.int(4), maxAttempts: row.int(5),
                            timeout: row.optionalInt64(6).map { .milliseconds($0) }, priority: row.int(7),
                            runAt: Date(unixMillis: row.int64(8)), startedAt: now, losses: row.int(9)))
            }
            claimed += rows.sorted { ($0.priority, -$0.runAt.unixMillis, -$0.id) > ($1.priority, -$1.runAt.unixMillis, -$1.id) }
            budgets.spend(rows.count, by: request)
            if rows.count >= limit { filled = true }
        }
        var moved = TransitionCounts()
        for task in claimed { moved.add(queue: task.queue, name: task.name) }
        try moved.record(db, from: .scheduled, to: .running)
        return claimed
    }

    /// The claim statement for one queue: ?1 worker, ?2 lease_until, ?3 now, ?4 queue, ?5 limit, ?6… names
    /// (`nameCount` of them; nil claims any name). Internal so tests can pin its query plan.
    ///
    /// `INDEXED BY tasks_due` and the unary `+` on run_at pin the plan to walking the due index in
    /// (priority DESC, run_at) order and stopping at the limit. Without them, once `ANALYZE` (or
    /// `PRAGMA optimize`) has written statistics, SQLite may pick another index or a skip-scan on run_at and
    /// sorts the whole due backlog in a temp b-tree on every claim.
    static func claimSQL(nameCount: Int?) -> String {
        var sql = """
            UPDATE tasks SET state = 'running', attempts = attempts + 1, lease_owner = ?1, lease_until = ?2,
                             started_at = ?3, updated_at = ?3, cancel_requested = 0, alone = 0
            WHERE id IN (SELECT id FROM tasks INDEXED BY tasks_due
                         WHERE state = 'scheduled' AND queue = ?4 AND +run_at <= ?3
            """
        if let nameCount {
            let marks = (0..<nameCount).map { "?\($0 + 6)" }.joined(separator: ", ")
            sql += " AND name IN (\(marks))"
        }
        sql += """
             ORDER BY priority DESC, run_at LIMIT ?5)
            RETURNING id, name, queue, payload, attempts, max_attempts, timeout_ms, priority, run_at, losses
            """
        return sql
    }

    /// Records attempt ends in one transaction (synchronous form); see ``TaskStore/complete(_:)``.
    @discardableResult
    public func completeSync(_ completions: [Completion]) throws -> [Bool] {
        if completions.isEmpty { return [] }
        return try completeAndClaimBlocking(completions, [], worker: "", leaseUntil: Date(), now: Date()).applied
    }

    /// One success of a task outside any batch, applied only while the attempt holds the lease: the
    /// scheduler's hot path (``completeBatch(_:)``). It names no column the update triggers watch (migration
    /// 6: `run_at`, `last_error`, `queue`, `name`), so no trigger program runs for it; the store counts it.
    static let succeededOneSQL = """
        UPDATE tasks SET state = 'succeeded', lease_owner = NULL, lease_until = NULL, finished_at = ?4, updated_at = ?4
        WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running' AND batch_id IS NULL
        """
    /// One success of any task (a batch item too). `last_error = last_error` changes nothing but names a
    /// watched column, so the batch trigger counts a finished item (the count trigger leaves the success to
    /// the store, as always).
    static let succeededOneAnySQL = """
        UPDATE tasks SET state = 'succeeded', lease_owner = NULL, lease_until = NULL, finished_at = ?4, updated_at = ?4,
                         last_error = last_error
        WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running'
        """
    /// The same, returning the task's queue and name for ``TransitionCounts`` when the caller does not know
    /// them (RETURNING buffers its rows in a temporary table on every run: avoided where it can be).
    static let succeededOneReturningSQL = succeededOneAnySQL + "\nRETURNING queue, name"
    static let retryOneSQL = """
        UPDATE tasks SET state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'scheduled' END,
                         finished_at = CASE WHEN cancel_requested = 1 THEN ?6 END,
                         lease_owner = NULL, lease_until = NULL, run_at = ?4,
                         last_error = ?5, updated_at = ?6
        WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running'
        """
    static let deadOneSQL = """
        UPDATE tasks SET state = 'dead', lease_owner = NULL, lease_until = NULL, finished_at = ?4,
                         last_error = ?5, updated_at = ?4
        WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running'
        """
    static let cancelledOneSQL = """
        UPDATE tasks SET state = 'cancelled', lease_owner = NULL, lease_until = NULL, finished_at = ?4,
                         last_error = ?5, updated_at = ?4
        WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running'
        """
    static let handBackOneSQL = """
        UPDATE tasks SET state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'scheduled' END,
                         finished_at = CASE WHEN cancel_requested = 1 THEN ?4 END,
                         lease_owner = NULL, lease_until = NULL, run_at = ?4, updated_at = ?4,
                         max_attempts = max_attempts + 1  -- a shutdown does not use up an attempt
        WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running'
        """
    static let attemptOneSQL = """
        INSERT INTO attempts(task_id, attempt, worker, started_at, finished_at, outcome, error, result)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING
        """

    /// Records one attempt end other than a success (typed binds); false when the attempt no longer holds
    /// the lease. Successes have their own path, ``recordSuccesses(_:_:applied:)``: the only one.
    func completeOther(_ db: Connection, _ completion: Completion) throws -> Bool {
        let finished = completion.finishedAt.unixMillis
        let outcome: AttemptOutcome
        var error: String? = nil
        let result: String? = nil
        let update: Statement
        switch completion.resolution {
        case .succeeded:
            preconditionFailure("successes are recorded by recordSuccesses")
        case .retry(let kind, let message, let runAt):
            outcome = kind
            error = message
            // A cancel requested while the attempt ran wins over the retry (the next claim would clear it).
            update = try db.cached(Self.retryOneSQL)
            update.reset()
            try update.bind(runAt.unixMillis, at: 4)
            try update.bind(message, at: 5)
            try update.bind(finished, at: 6)
        case .dead(let kind, let message):
            outcome = kind
            error = message
            update = try db.cached(Self.deadOneSQL)
            update.reset()
            try update.bind(finished, at: 4)
            try update.bind(message, at: 5)
        case .cancelled(let reason):
            outcome = .cancelled
            error = reason
            update = try db.cached(Self.cancelledOneSQL)
            update.reset()
            try update.bind(finished, at: 4)
            try update.bind(reason, at: 5)
        case .handBack(let reason):
            outcome = .cancelled
            error = reason
            update = try db.cached(Self.handBackOneSQL)
            update.reset()
            try update.bind(finished, at: 4)
        }
        try update.bind(completion.taskID, at: 1)
        try update.bind(Int64(completion.attempt), at: 2)
        try update.bind(completion.worker, at: 3)
        try update.execute()
        guard db.changes == 1 else { return false }
        let insert = try db.cached(Self.attemptOneSQL)
        insert.reset()
        try insert.bind(completion.taskID, at: 1)
        try insert.bind(Int64(completion.attempt), at: 2)
        try insert.bind(completion.worker, at: 3)
        try insert.bind(completion.startedAt.unixMillis, at: 4)
        try insert.bind(finished, at: 5)
        try insert.bind(outcome.rawValue, at: 6)
        try insert.bind(error, at: 7)
        try insert.bind(result, at: 8)
        try insert.execute()
        return true
    }

    public func nextRunAt(queues: [String], names: [String]?) async throws -> Date? {
        try await io { [self] in
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
        try await io { [self] in
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
    }

    public func heartbeat(worker: String, now: Date, leaseUntil: Date) async throws -> [TaskID] {
        try await io { [self] in
            try write { db in
                try db.run("UPDATE workers SET heartbeat_at = ?2 WHERE id = ?1", [.text(worker), .integer(now.unixMillis)])
                try db.run("UPDATE tasks SET lease_until = ?2 WHERE state = 'running' AND lease_owner = ?1",
                           [.text(worker), .integer(leaseUntil.unixMillis)])
                return try db.query("SELECT id FROM tasks WHERE state = 'running' AND lease_owner = ? AND cancel_requested = 1",
                                    [.text(worker)]) { $0.int64(0) }
            }
        }
    }

    public func stopWorker(_ id: String, at: Date) async throws {
        try await io { [self] in
            try write { db in
                try db.run("UPDATE workers SET stopped_at = ?2, heartbeat_at = max(heartbeat_at, ?2) WHERE id = ?1",
                           [.text(id), .integer(at.unixMillis)])
            }
        }
    }

    public func workers() async throws -> [WorkerRecord] {
        try await io { [self] in
            try read { db in try Self.workers(db) }
        }
    }

    /// Every worker row, most recent heartbeat first (inside the caller's read).
    static func workers(_ db: Connection) throws -> [WorkerRecord] {
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

    @discardableResult
    public func recoverExpiredLeases(now: Date) async throws -> [TaskID] {
        try await io { [self] in
            try recover(condition: "lease_until < ?1", values: [.integer(now.unixMillis)],
                        error: "'lease expired: worker ' || coalesce(lease_owner, '?') || ' stopped heartbeating'", now: now)
        }
    }

    @discardableResult
    public func recoverLeases(ofWorkers workers: [String], now: Date, reason: String) async throws -> [TaskID] {
        try await io { [self] in
            if workers.isEmpty { return [] }
            return try recover(condition: "lease_owner IN (SELECT value FROM json_each(?2))",
                               values: [.integer(now.unixMillis), .text(try Self.jsonArray(workers)), .text(reason)],
                               error: "?3", now: now)
        }
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
            return try db.query(Self.recoverSQL(condition: condition, error: error), values) { $0.int64(0) }
        }
    }

    /// The recovery of running tasks matching `condition` (?1 is now; `error` an SQL expression).
    static func recoverSQL(condition: String, error: String) -> String {
        """
        UPDATE tasks SET
            state = CASE WHEN cancel_requested = 1 THEN 'cancelled'
                         WHEN solo_losses + alone >= poison_limit THEN 'dead' ELSE 'scheduled' END,
            finished_at = CASE WHEN cancel_requested = 1 OR solo_losses + alone >= poison_limit THEN ?1 END,
            last_error = CASE WHEN cancel_requested = 0 AND solo_losses + alone >= poison_limit
                              THEN 'poison: lost ' || (solo_losses + alone) || ' times while running alone on its worker '
                                   || '(poison limit ' || poison_limit || '); it likely crashes its worker process. Last: '
                                   || \(error)
                              ELSE \(error) END,
            losses = losses + 1, solo_losses = solo_losses + alone, alone = 0,
            max_attempts = max_attempts + 1,  -- a lost attempt does not use up the task's attempts
            run_at = ?1, lease_owner = NULL, lease_until = NULL, updated_at = ?1
        WHERE state = 'running' AND \(condition)
        RETURNING id
        """
    }

    public func markRunningAlone(_ task: TaskID, attempt: Int, worker: String) async throws -> Bool {
        try await io { [self] in
            try write { db in
                try db.run("UPDATE tasks SET alone = 1 WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running'",
                           [.integer(task), .integer(Int64(attempt)), .text(worker)]) == 1
            }
        }
    }

    /// Cancels scheduled task ?1 at ?2.
    static let cancelScheduledSQL = """
        UPDATE tasks SET state = 'cancelled', finished_at = ?2, updated_at = ?2, last_error = coalesce(last_error, 'cancelled')
        WHERE id = ?1
        """

    // MARK: Operations

    /// A task's state, or nil when there is no such task.
    private static func state(of id: TaskID, _ db: Connection) throws -> TaskState? {
        try db.queryFirst("SELECT state FROM tasks WHERE id = ?", [.integer(id)]) { TaskState(rawValue: $0.string(0)) } ?? nil
    }

    public func cancel(_ ids: [TaskID], now: Date) async throws -> [TaskID: CancelOutcome] {
        try await io { [self] in
            try write { db in
                var outcomes: [TaskID: CancelOutcome] = [:]
                for id in ids {
                    guard let state = try Self.state(of: id, db) else {
                        outcomes[id] = .notFound
                        continue
                    }
                    switch state {
                    case .scheduled:
                        try db.run(Self.cancelScheduledSQL, [.integer(id), .integer(now.unixMillis)])
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
    }

    public func retry(_ ids: [TaskID], now: Date) async throws -> [TaskID: RetryOutcome] {
        try await io { [self] in
            try write { db in
                var outcomes: [TaskID: RetryOutcome] = [:]
                for id in ids {
                    guard let state = try Self.state(of: id, db) else {
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
    }

    /// Makes a task `scheduled` again, due at ?1, with at least one more attempt; callers add the WHERE.
    static let retrySQL = """
        UPDATE tasks SET state = 'scheduled', run_at = ?1, updated_at = ?1, finished_at = NULL, cancel_requested = 0,
                         max_attempts = max(max_attempts, attempts + 1)
        """

    public func retryAll(state: TaskState, queue: String?, now: Date) async throws -> Int {
        try await io { [self] in
            guard state == .dead || state == .cancelled else {
                throw RotaError(.invalidInput, field: "state", "only dead or cancelled tasks can be retried, not \(state)")
            }
            // The state as a literal, so the partial index of that state (tasks_dead, tasks_cancelled) applies.
            let stateCondition = " WHERE state = '\(state.rawValue)'"
            return try write { db in
                if let queue {
                    return try db.run(Self.retrySQL + stateCondition + " AND queue = ?2", [.integer(now.unixMillis), .text(queue)])
                }
                return try db.run(Self.retrySQL + stateCondition, [.integer(now.unixMillis)])
            }
        }
    }

    public func purge(olderThan: Date, states: [TaskState]) async throws -> Int {
        try await io { [self] in
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
    }

    // MARK: Queries

    private static let taskColumns = """
        t.id, t.name, t.queue, t.payload, t.state, t.priority, t.run_at, t.attempts, t.max_attempts, t.timeout_ms,
        t.lease_owner, t.lease_until, t.started_at, t.cancel_requested, t.unique_key, b.name, t.batch_item,
        t.schedule, t.fire_at, t.created_at, t.updated_at, t.finished_at, t.last_error,
        (SELECT a.result FROM attempts a WHERE a.task_id = t.id AND a.outcome = 'succeeded' ORDER BY a.attempt DESC LIMIT 1),
        t.losses, t.solo_losses, t.poison_limit
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
            result: row.optionalString(23), losses: row.int(24), soloLosses: row.int(25), poisonLimit: row.int(26))
    }

    public func task(_ id: TaskID) async throws -> TaskRecord? {
        try await io { [self] in
            try read { db in
                try db.queryFirst("SELECT \(Self.taskColumns) WHERE t.id = ?", [.integer(id)], Self.taskRecord)
            }
        }
    }

    public func attempts(of id: TaskID) async throws -> [AttemptRecord] {
        try await io { [self] in
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
    }

    public func list(_ filter: TaskFilter) async throws -> [TaskRecord] {
        try await io { [self] in
            var conditions: [String] = []
            var values: [SQLiteValue] = []
            func bind(_ value: SQLiteValue) -> String {
                values.append(value)
                return "?\(values.count)"
            }
            if let queue = filter.queue { conditions.append("t.queue = \(bind(.text(queue)))") }
            if let name = filter.name { conditions.append("t.name = \(bind(.text(name)))") }
            if let batch = filter.batch {
                conditions.append("t.batch_id = (SELECT id FROM batches WHERE name = \(bind(.text(batch))))")
            }
            if let schedule = filter.schedule { conditions.append("t.schedule = \(bind(.text(schedule)))") }
            if let since = filter.createdSince { conditions.append("t.created_at >= \(bind(.integer(since.unixMillis)))") }
            if let before = filter.beforeID { conditions.append("t.id < \(bind(.integer(before)))") }
            let limit = bind(.integer(Int64(max(0, filter.limit))))
            let states = filter.states.reduce(into: [TaskState]()) { if !$0.contains($1) { $0.append($1) } }
            // A batch or schedule filter has its own index (tasks_batch_state, tasks_fire): the planner picks.
            let planned = filter.batch != nil || filter.schedule != nil
            return try read { db in
                var whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
                if !states.isEmpty {
                    // One walk per state, newest first, stopping at the limit; several are merged.
                    let counts = planned ? [:] : try Self.listCounts(db, queue: filter.queue, name: filter.name)
                    let walks = states.map { state in
                        let (from, extra) = Self.listSource(state, counts: counts, planned: planned)
                        let all = ["t.state = '\(state.rawValue)'"] + extra + conditions
                        return "SELECT id FROM (SELECT t.id FROM \(from) WHERE \(all.joined(separator: " AND ")) ORDER BY t.id DESC LIMIT \(limit))"
                    }
                    whereClause = " WHERE t.id IN (\(walks.joined(separator: " UNION ALL ")))"
                }
                let sql = "SELECT \(Self.taskColumns)\(whereClause) ORDER BY t.id DESC LIMIT \(limit)"
                // Ad-hoc filter combinations: prepare without caching to keep the cache small.
                let statement = try db.prepare(sql)
                try statement.bind(values)
                var rows: [TaskRecord] = []
                while try statement.step() { rows.append(Self.taskRecord(statement)) }
                return rows
            }
        }
    }

    /// Tasks per state (of one queue and/or name when given), and under `nil` all the table's tasks, from
    /// task_counts.
    private static func listCounts(_ db: Connection, queue: String?, name: String?) throws -> [TaskState?: Int] {
        var counts: [TaskState?: Int] = [:]
        for (state, n) in try db.query("""
            SELECT state, sum(n) FROM task_counts WHERE (?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR name = ?2) GROUP BY state
            """, [queue.map { .text($0) } ?? .null, name.map { .text($0) } ?? .null], { ($0.string(0), $0.int(1)) }) {
            counts[TaskState(rawValue: state)] = n
        }
        counts[nil] = Int(try db.scalarInt("SELECT coalesce(sum(n), 0) FROM task_counts") ?? 0)
        return counts
    }

    /// Where `rota list` walks the tasks of one state (migration 0003 has an index per state only where it is
    /// cheap to keep): running, dead and cancelled tasks have partial indexes (ordered by id within them).
    /// Scheduled and succeeded tasks (of the filtered queue/name) are walked through the table from the newest
    /// row when they are at least 1 in 20 of all tasks (the limit is met early), else through tasks_due /
    /// tasks_finished and sorted.
    /// Returns the FROM clause and the extra conditions its index needs.
    private static func listSource(_ state: TaskState, counts: [TaskState?: Int], planned: Bool) -> (String, [String]) {
        if planned { return ("tasks t", []) }
        // The walk meets the limit early only if the state (of the filtered queue/name) is common in the table.
        let count = counts[state] ?? 0
        let common = count > 0 && count * 20 >= (counts[nil] ?? 0)
        switch state {
        case .running: return ("tasks t INDEXED BY tasks_running", [])
        case .dead: return ("tasks t INDEXED BY tasks_dead", [])
        case .cancelled: return ("tasks t INDEXED BY tasks_cancelled", [])
        case .scheduled: return common ? ("tasks t NOT INDEXED", []) : ("tasks t INDEXED BY tasks_due", [])
        case .succeeded:
            return common ? ("tasks t NOT INDEXED", []) : ("tasks t INDEXED BY tasks_finished", ["t.finished_at IS NOT NULL"])
        }
    }

    public func stats(now: Date) async throws -> StoreStats {
        try await io { [self] in
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
                    let oldest = try Self.oldestScheduledRunAt(db, queues: queues.filter { ($0.value[.scheduled] ?? 0) > 0 }.keys)
                        .flatMap { $0 <= nowMs ? $0 : nil }
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
    }

    /// The earliest `run_at` of the scheduled tasks of `queues`: the first entry of tasks_due for each queue
    /// and priority (one index seek each, whatever the backlog).
    static func oldestScheduledRunAt(_ db: Connection, queues: some Sequence<String>) throws -> Int64? {
        var oldest: Int64?
        for queue in queues {
            var atMost = Int64.max
            while let (priority, runAt) = try db.queryFirst(Self.firstDueAtMostPrioritySQL, [.text(queue), .integer(atMost)], {
                ($0.int64(0), $0.int64(1))
            }) {
                oldest = min(oldest ?? runAt, runAt)
                if priority <= 0 { break }
                atMost = priority - 1
            }
        }
        return oldest
    }

    /// The first scheduled task of queue ?1 with a priority of at most ?2 (its priority's earliest run_at).
    static let firstDueAtMostPrioritySQL = """
        SELECT priority, run_at FROM tasks INDEXED BY tasks_due
        WHERE state = 'scheduled' AND queue = ?1 AND priority <= ?2 ORDER BY priority DESC, run_at LIMIT 1
        """

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

/// Tasks moved by one transaction along a hot transition (scheduled -> running at claim, running -> succeeded
/// at completion), per queue and name. Since migration 0003 the count triggers skip these two transitions;
/// ``record(_:from:to:)`` adds them to task_counts, one statement per (queue, name), in the same transaction.
struct TransitionCounts {
    private var queues: [String] = []
    private var names: [String] = []
    private var counts: [Int] = []

    /// Adds one task (a linear search: a transaction's tasks come from one or a few queues and names).
    mutating func add(queue: String, name: String) {
        for index in counts.indices.reversed() where queues[index] == queue && names[index] == name {
            counts[index] += 1
            return
        }
        queues.append(queue)
        names.append(name)
        counts.append(1)
    }

    static let upsertSQL = """
        INSERT INTO task_counts(queue, name, state, n) VALUES (?1, ?2, ?3, ?4)
        ON CONFLICT (queue, name, state) DO UPDATE SET n = n + excluded.n
        """

    /// Subtracts the tasks from `from`'s counts and adds them to `to`'s (inside the caller's transaction);
    /// with `from` nil (new tasks), only adds them to `to`'s.
    func record(_ db: Connection, from: TaskState?, to: TaskState) throws {
        if counts.isEmpty { return }
        let upsert = try db.cached(Self.upsertSQL)
        for index in counts.indices {
            func add(_ delta: Int, to state: TaskState) throws {
                upsert.reset()
                try upsert.bind(queues[index], at: 1)
                try upsert.bind(names[index], at: 2)
                try upsert.bind(state.rawValue, at: 3)
                try upsert.bind(Int64(delta), at: 4)
                try upsert.execute()
            }
            if let from { try add(-counts[index], to: from) }
            try add(counts[index], to: to)
        }
    }
}
