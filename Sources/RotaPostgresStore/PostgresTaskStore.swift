import Foundation
import Logging
import PostgresNIO
import Rota
import Synchronization

/// The PostgreSQL implementation of ``TaskStore``: many schedulers on many hosts share one queue, one
/// schedule set and one history. All of its SQL is in this module; its schema is `migrations/postgres/`.
///
/// ```swift
/// let store = try await PostgresTaskStore.connect(url: "postgres://rota@db.internal/rota")
/// let id = try await store.enqueue(TaskSpec(name: "exec", payload: #"{"argv":["echo","hi"]}"#)).id
/// ```
///
/// The store keeps a pool of connections (postgres-nio's `PostgresClient`), which it runs itself from the
/// moment it is created until ``close()`` (or until it is released). Every method that changes state is one
/// transaction (READ COMMITTED, with the row locks each statement needs); claims take rows with
/// `FOR UPDATE SKIP LOCKED`, so schedulers on any number of hosts never wait for each other's claims, and a
/// transaction that loses a deadlock or a serialization race is run again. Completions are fenced: a result
/// applies only while its attempt still holds the lease (same task, attempt and worker, still running).
///
/// Liveness across hosts is judged by leases and heartbeats alone (a process id means nothing on another
/// host).
public final class PostgresTaskStore: TaskStore, Sendable {
    /// How it was configured.
    public let configuration: Configuration
    /// The pool.
    let client: PostgresClient
    /// Runs the pool; cancelled by ``close()`` or when the store is released.
    private let runner: Task<Void, Never>
    /// The schema check (and migration) made once, before the first call goes through.
    private let ready: Task<Void, any Error>
    let logger: Logger
    /// Claim statements by name count (-1: any name), built once.
    private let claimSQL = Mutex<[Int: String]>([:])
    /// Notifications the LISTEN loop received (``externalCommitVersion()``).
    let notifications = NotificationCounter()
    /// How often this process NOTIFYs a queue after enqueues (``Configuration/notifyInterval``).
    let notifyGate: NotifyGate

    /// The migrations this binary carries (`migrations/postgres/*.sql`, embedded at build time).
    public static let migrations: [PostgresMigration] = EmbeddedMigrations.all.map {
        PostgresMigration(version: $0.version, name: $0.name, sql: $0.sql)
    }

    /// Creates the store and starts its pool and its schema check; calls wait for the check, and fail with its
    /// error. ``connect(_:)`` waits for it and throws at once.
    public init(_ configuration: Configuration) {
        self.configuration = configuration
        notifyGate = NotifyGate(interval: configuration.notifyInterval)
        var logger = Logger(label: "rota.postgres")
        // The pool's and the connections' own log (postgres-nio's), for diagnosis: ROTA_POSTGRES_LOG=debug.
        logger.logLevel = ProcessInfo.processInfo.environment["ROTA_POSTGRES_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        self.logger = logger
        let client = PostgresClient(configuration: configuration.clientConfiguration(), backgroundLogger: logger)
        self.client = client
        runner = Task.detached { await client.run() }
        ready = Task.detached { [configuration, logger] in
            try await PostgresMigrator.prepare(client, configuration: configuration, migrations: Self.migrations, logger: logger)
        }
    }

    /// Opens the database at `url` (see ``Configuration``), checks its schema and applies pending migrations.
    /// - Throws: ``RotaError`` `.invalidInput` for a bad URL, `.database` when the server cannot be reached or
    ///   the schema is refused (newer than this binary, a changed migration, not Rota's).
    public static func connect(url: String, access: Configuration.Access = .migrate) async throws -> PostgresTaskStore {
        try await connect(Configuration(url: url, access: access))
    }

    /// Opens the database `configuration` names and checks it (see ``connect(url:access:)``).
    public static func connect(_ configuration: Configuration) async throws -> PostgresTaskStore {
        let store = PostgresTaskStore(configuration)
        do {
            // An unreachable server, a refused login or a missing database is told at once, with its reason
            // (the pool would fail the schema check only when its circuit breaker trips, a minute later).
            try await store.checkConnection()
            try await store.ready.value
        } catch {
            await store.close()
            throw store.mapped(error)
        }
        return store
    }

    /// Waits for the schema check; throws what it found.
    public func checkSchema() async throws {
        do { try await ready.value } catch { throw mapped(error) }
    }

    /// Closes the pool: calls made after it fail.
    public func close() async {
        runner.cancel()
        ready.cancel()
        await runner.value
    }

    deinit {
        ready.cancel()
        runner.cancel()
    }

    /// The largest payload accepted at enqueue (``Configuration/maxPayloadBytes``).
    public var maxPayloadBytes: Int { configuration.maxPayloadBytes }

    /// The migrations applied to the database, and the highest this binary knows.
    public func schemaVersion() async throws -> (applied: Int, known: Int) {
        try await checkSchema()
        let applied = try await read { connection in
            try await connection.rows("SELECT coalesce(max(version), 0) FROM rota_migrations", [], logger) { try $0.int(0) }.first ?? 0
        }
        return (applied, Self.migrations.count)
    }

    // MARK: Plumbing

    /// Runs `body` on a connection of the pool (no transaction: each statement commits alone).
    func read<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await checkSchema()
        do {
            return try await client.withConnection { connection in try await body(connection) }
        } catch {
            throw mapped(error)
        }
    }

    /// Runs `body` in one transaction and commits it; runs it again (up to 20 times) when PostgreSQL chose it
    /// as a deadlock's victim or a serialization failure's, so `body` must do nothing but its SQL.
    /// `transaction: false` runs `body`, one statement, as its own transaction (autocommit: no BEGIN/COMMIT
    /// round trips).
    func write<T: Sendable>(isolation: String = "", transaction: Bool = true,
                            _ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await checkSchema()
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await client.withConnection { connection in
                    if !transaction { return try await body(connection) }
                    try await connection.run(PostgresQuery(unsafeSQL: "BEGIN" + isolation), logger)
                    do {
                        let value = try await body(connection)
                        try await connection.run("COMMIT", logger)
                        return value
                    } catch {
                        try? await connection.run("ROLLBACK", logger)
                        throw error
                    }
                }
            } catch let error as PSQLError where attempt < 20 && Self.isRetryableConflict(error) {
                // Another transaction won the race: give it a moment, then start over.
                try? await Task.sleep(for: .milliseconds(Int.random(in: 1...(2 * attempt))))
                continue
            } catch {
                throw mapped(error)
            }
        }
    }

    /// A transaction PostgreSQL rolled back for a deadlock (40P01) or a serialization failure (40001).
    static func isRetryableConflict(_ error: PSQLError) -> Bool {
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001"
    }

    /// A ``RotaError`` for what the server or the client reported.
    func mapped(_ error: any Error) -> any Error {
        if error is RotaError || error is CancellationError { return error }
        let place = configuration.displayName
        if let error = error as? PostgresMigrationError { return RotaError(.database, error.message) }
        guard let error = error as? PSQLError else {
            return RotaError(.database, "\(place): \(error)")
        }
        if let info = error.serverInfo {
            let state = info[.sqlState] ?? "?"
            let message = info[.message] ?? "\(error)"
            let detail = info[.detail].map { " (\($0))" } ?? ""
            switch state {
            case "40P01", "40001", "55P03", "57014":
                return RotaError(.busy, "\(place) is busy: \(message); nothing was written, retry", underlying: error)
            case "53100", "53200":
                return RotaError(.full, "\(place) is out of disk or memory: \(message); nothing was written, retry once space is freed", underlying: error)
            case "57P01", "57P02", "57P03":
                return RotaError(.busy, "\(place) is shutting down or restarting: \(message); nothing was written, retry", underlying: error)
            case "25006":
                return RotaError(.database, "\(place) is read-only (\(message)): a standby, or a read-only session", underlying: error)
            case "3D000":
                return RotaError(.notFound, "\(place): \(message); create it first (createdb)", underlying: error)
            case "28P01", "28000":
                return RotaError(.database, "\(place) refused the login: \(message)", underlying: error)
            default:
                return RotaError(.database, "\(place): \(message)\(detail) [SQLSTATE \(state)]", underlying: error)
            }
        }
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown:
            return RotaError(.busy, "cannot reach the \(place): \(error.underlying.map { "\($0)" } ?? "\(error.code)"); nothing was written, retry", underlying: error)
        default:
            return RotaError(.database, "\(place): \(error.code)\(error.underlying.map { ": \($0)" } ?? "")", underlying: error)
        }
    }

    static func now() -> Int64 { Date().unixMillis }

    // MARK: Enqueue

    public func enqueue(validated specs: ValidatedSpecs) async throws -> [EnqueueResult] {
        let specs = specs.specs
        if specs.isEmpty { return [] }
        let now = Self.now()
        if specs.count <= Self.plainInsertLimit, specs.allSatisfy(Self.isPlain) {
            return try await enqueuePlain(specs, now: now)
        }
        let (results, unnotified) = try await write { [logger, notifyGate] connection in
            try await Self.insert(specs, now: now, connection, logger, gate: notifyGate)
        }
        // Committed: the queues the transaction did not notify itself get a trailing NOTIFY.
        followNotify(unnotified)
        return results
    }

    /// Enqueues tasks with nothing unique about them (the common case) in one statement, its own transaction:
    /// the rows, their counts and the NOTIFY of their queues, in one round trip.
    func enqueuePlain(_ specs: [TaskSpec], now: Int64) async throws -> [EnqueueResult] {
        var counts = TransitionCounts()
        for spec in specs { counts.add(queue: spec.queue, name: spec.name) }
        let due = notifyGate.split(Set(specs.map(\.queue)))
        var binds = Self.plainInsertBinds(specs, now: now)
        counts.append(to: &binds)
        binds.append(due.now.sorted())
        let query = PostgresQuery(unsafeSQL: """
            WITH inserted AS (\(Self.plainInsertSQL)),
            counted AS (\(TransitionCounts.upsertSQL(from: 10))),
            notified AS (SELECT pg_notify('\(Self.channel)', current_schema() || '/' || q) FROM unnest($14::text[]) AS q)
            SELECT id FROM inserted CROSS JOIN (SELECT count(*) FROM notified) AS n
            """, binds: binds)
        let ids = try await write(transaction: false) { [logger] connection in
            try await connection.rows(query, logger) { try $0.int64(0) }
        }
        guard ids.count == specs.count else {
            throw RotaError(.database, "a multi-row enqueue inserted \(ids.count) of \(specs.count) tasks")
        }
        followNotify(due.later)
        // Identity values are drawn in the order rows are inserted (ORDER BY n), so they sort as the specs.
        return ids.sorted().map { EnqueueResult(id: $0, inserted: true) }
    }

    /// A task with nothing unique about it (no unique key, batch item or cron instant): it is inserted,
    /// never found already there, so many go in one multi-row INSERT.
    static func isPlain(_ spec: TaskSpec) -> Bool { spec.uniqueKey == nil && spec.batchID == nil && spec.schedule == nil }

    /// The most plain tasks one multi-row INSERT takes.
    static let plainInsertLimit = 5_000

    /// The multi-row INSERT of plain tasks ($1–$9, see ``plainInsertBinds(_:now:)``), returning their ids.
    static let plainInsertSQL = """
        INSERT INTO rota_tasks(name, queue, payload, priority, run_at, max_attempts, timeout_ms, poison_limit,
                               created_at, updated_at)
        SELECT name, queue, payload, priority, run_at, max_attempts, nullif(timeout_ms, -1), poison_limit, $9, $9
        FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])
             WITH ORDINALITY AS s(name, queue, payload, priority, run_at, max_attempts, timeout_ms, poison_limit, n)
        ORDER BY n
        RETURNING id
        """

    /// The binds of ``plainInsertSQL``: the specs' columns as arrays, then the time.
    static func plainInsertBinds(_ specs: some Collection<TaskSpec>, now: Int64) -> PostgresBindings {
        var binds = PostgresBindings(capacity: 14)
        binds.append(specs.map(\.name))
        binds.append(specs.map(\.queue))
        binds.append(specs.map(\.payload))
        binds.append(specs.map(\.priority))
        binds.append(specs.map { $0.runAt?.unixMillis ?? now })
        binds.append(specs.map(\.maxAttempts))
        binds.append(specs.map { $0.timeout?.milliseconds ?? -1 })
        binds.append(specs.map { $0.poisonLimit ?? 2 })
        binds.append(now)
        return binds
    }

    /// Inserts validated specs inside the caller's transaction; counts them and adds batch items to their batch.
    /// Notifies the queues of the tasks it made due at commit, but those `gate` holds back (returned: the
    /// caller sends them a trailing NOTIFY once the transaction committed).
    static func insert(_ specs: [TaskSpec], now: Int64, _ connection: PostgresConnection, _ logger: Logger,
                       gate: NotifyGate) async throws -> ([EnqueueResult], unnotified: [String]) {
        // A batch id that does not exist is the caller's mistake: named, nothing written.
        let batchIDs = Array(Set(specs.compactMap(\.batchID)))
        if !batchIDs.isEmpty {
            let known = Set(try await connection.rows("SELECT id FROM rota_batches WHERE id = ANY($1)", [batchIDs], logger) { try $0.int64(0) })
            if let index = specs.firstIndex(where: { $0.batchID.map { !known.contains($0) } ?? false }) {
                throw RotaError(.invalidInput, field: specs.count > 1 ? "tasks[\(index)].batch_id" : "batch_id",
                                "no batch has id \(specs[index].batchID.map(String.init) ?? "nil")")
            }
        }
        var results: [EnqueueResult?] = Array(repeating: nil, count: specs.count)
        var counts = TransitionCounts()
        var batchItems: [Int64: Int64] = [:]
        // Runs of plain tasks (nothing unique about them) go in one multi-row INSERT each, through arrays; ids
        // follow the specs' order, as one insert at a time would give them.
        var plain: [Int] = []
        func insertPlain() async throws {
            if plain.isEmpty { return }
            let chunk = plain
            plain = []
            let binds = plainInsertBinds(chunk.map { specs[$0] }, now: now)
            let ids = try await connection.rows(PostgresQuery(unsafeSQL: plainInsertSQL, binds: binds), logger) { try $0.int64(0) }
            guard ids.count == chunk.count else {
                throw RotaError(.database, "a multi-row enqueue inserted \(ids.count) of \(chunk.count) tasks")
            }
            // Identity values are drawn in the order rows are inserted (ORDER BY n), so they sort as the specs.
            for (index, id) in zip(chunk, ids.sorted()) {
                results[index] = EnqueueResult(id: id, inserted: true)
                counts.add(queue: specs[index].queue, name: specs[index].name)
            }
        }
        for (index, spec) in specs.enumerated() {
            if isPlain(spec) {
                plain.append(index)
                if plain.count >= plainInsertLimit { try await insertPlain() }
                continue
            }
            try await insertPlain()
            let inserted = try await connection.rows("""
                INSERT INTO rota_tasks(name, queue, payload, priority, run_at, max_attempts, timeout_ms, unique_key,
                                       batch_id, batch_item, schedule, fire_at, created_at, updated_at, poison_limit)
                VALUES (\(spec.name), \(spec.queue), \(spec.payload), \(spec.priority), \(spec.runAt?.unixMillis ?? now),
                        \(spec.maxAttempts), \(spec.timeout?.milliseconds), \(spec.uniqueKey), \(spec.batchID),
                        \(spec.batchItem), \(spec.schedule), \(spec.fireAt?.unixMillis), \(now), \(now), \(spec.poisonLimit ?? 2))
                ON CONFLICT DO NOTHING
                RETURNING id
                """, logger) { try $0.int64(0) }
            if let id = inserted.first {
                results[index] = EnqueueResult(id: id, inserted: true)
                counts.add(queue: spec.queue, name: spec.name)
                if let batch = spec.batchID { batchItems[batch, default: 0] += 1 }
            } else if let existing = try await existingTask(for: spec, connection, logger) {
                results[index] = EnqueueResult(id: existing, inserted: false)
            } else {
                throw RotaError(.database, "enqueue of \(spec.name) conflicted but no existing task was found")
            }
        }
        try await insertPlain()
        for (batch, added) in batchItems.sorted(by: { $0.key < $1.key }) {
            try await connection.run("UPDATE rota_batches SET total = total + \(added) WHERE id = \(batch)", logger)
        }
        try await counts.record(connection, logger, from: nil, to: .scheduled)
        let due = gate.split(Set(specs.indices.filter { results[$0]?.inserted == true }.map { specs[$0].queue }))
        try await notifyDue(due.now, connection, logger)
        return (results.map { $0! }, due.later)
    }

    /// The task that holds `spec`'s unique key, batch item or cron instant.
    static func existingTask(for spec: TaskSpec, _ connection: PostgresConnection, _ logger: Logger) async throws -> TaskID? {
        if let key = spec.uniqueKey,
           let id = try await connection.rows("SELECT id FROM rota_tasks WHERE unique_key = \(key)", logger, { try $0.int64(0) }).first {
            return id
        }
        if let batch = spec.batchID, let item = spec.batchItem,
           let id = try await connection.rows("SELECT id FROM rota_tasks WHERE batch_id = \(batch) AND batch_item = \(item)", logger, { try $0.int64(0) }).first {
            return id
        }
        if let schedule = spec.schedule, let fire = spec.fireAt?.unixMillis,
           let id = try await connection.rows("SELECT id FROM rota_tasks WHERE schedule = \(schedule) AND fire_at = \(fire)", logger, { try $0.int64(0) }).first {
            return id
        }
        return nil
    }

    // MARK: Claim and complete

    public func completeAndClaim(_ completions: [Completion], _ requests: [ClaimRequest], worker: String,
                                 leaseUntil: Date, now: Date) async throws -> ClaimTurn {
        let requests = requests.filter { $0.limit > 0 && $0.names?.isEmpty != true }
        if completions.isEmpty && requests.isEmpty { return ClaimTurn(applied: [], claimed: [], filled: false) }
        if completions.isEmpty, requests.count == 1 {
            return try await claimAlone(requests[0], worker: worker, leaseUntil: leaseUntil, now: now)
        }
        let statements = requests.map { claimStatement(nameCount: $0.names?.count) }
        return try await write { [logger] connection in
            var counts = TransitionCounts()
            let applied = try await Self.record(completions, connection, logger, counting: &counts)
            var claimed: [ClaimedTask] = []
            var filled = false
            var budgets = ClaimBudgetLedger()
            for (request, sql) in zip(requests, statements) {
                let limit = budgets.limit(for: request)
                if limit <= 0 { continue }
                let binds = Self.claimBinds(request, limit: limit, worker: worker, leaseUntil: leaseUntil, now: now)
                let rows = try await connection.rows(PostgresQuery(unsafeSQL: sql, binds: binds), logger) { try Self.claimedTask($0, now) }
                claimed += Self.inClaimOrder(rows)
                budgets.spend(rows.count, by: request)
                if rows.count >= limit { filled = true }
                for task in rows { counts.add(queue: task.queue, name: task.name, from: .scheduled, to: .running) }
            }
            // Last, so the count rows (shared by every scheduler) are locked for as short a time as possible.
            try await counts.record(connection, logger)
            return ClaimTurn(applied: applied, claimed: claimed, filled: filled)
        }
    }

    /// A turn of one claim and no attempt ends (the usual turn of a busy scheduler, which records ends beside
    /// it): one statement, its own transaction, counts included.
    func claimAlone(_ request: ClaimRequest, worker: String, leaseUntil: Date, now: Date) async throws -> ClaimTurn {
        // Its budgets (a pool's slots) may allow less than its limit.
        let budgets = ClaimBudgetLedger()
        let limit = budgets.limit(for: request)
        if limit <= 0 { return ClaimTurn(applied: [], claimed: [], filled: false) }
        let sql = claimStatement(nameCount: request.names?.count, counted: true)
        let binds = Self.claimBinds(request, limit: limit, worker: worker, leaseUntil: leaseUntil, now: now)
        let rows = try await write(transaction: false) { [logger] connection in
            try await connection.rows(PostgresQuery(unsafeSQL: sql, binds: binds), logger) { try Self.claimedTask($0, now) }
        }
        return ClaimTurn(applied: [], claimed: Self.inClaimOrder(rows), filled: rows.count >= limit)
    }

    /// The binds of ``claimStatement(nameCount:counted:)``.
    static func claimBinds(_ request: ClaimRequest, limit: Int, worker: String, leaseUntil: Date, now: Date) -> PostgresBindings {
        var binds = PostgresBindings(capacity: 6)
        binds.append(worker)
        binds.append(leaseUntil.unixMillis)
        binds.append(now.unixMillis)
        binds.append(request.queue)
        binds.append(limit)
        if let names = request.names { binds.append(names) }
        return binds
    }

    /// A row the claim statement returned.
    static func claimedTask(_ row: PostgresRandomAccessRow, _ now: Date) throws -> ClaimedTask {
        ClaimedTask(id: try row.int64(0), name: try row.string(1), queue: try row.string(2), payload: try row.string(3),
                    attempt: try row.int(4), maxAttempts: try row.int(5),
                    timeout: try row.optionalInt64(6).map { .milliseconds($0) }, priority: try row.int(7),
                    runAt: Date(unixMillis: try row.int64(8)), startedAt: now, losses: try row.int(9))
    }

    /// Claimed tasks in claim order (priority, then run_at, then id).
    static func inClaimOrder(_ tasks: [ClaimedTask]) -> [ClaimedTask] {
        tasks.sorted { ($0.priority, -$0.runAt.unixMillis, -$0.id) > ($1.priority, -$1.runAt.unixMillis, -$1.id) }
    }

    /// The claim statement for one queue: $1 worker, $2 lease_until, $3 now, $4 queue, $5 limit, $6 names
    /// (an array, when `nameCount` is not nil). The due index gives the tasks in claim order; rows another
    /// scheduler is claiming are skipped, not waited for.
    /// `counted`: the statement also moves the claimed tasks' counts (from scheduled to running), for a claim
    /// that is its own transaction.
    func claimStatement(nameCount: Int?, counted: Bool = false) -> String {
        let key = (nameCount == nil ? -1 : 0) - (counted ? 2 : 0)
        return claimSQL.withLock { cache in
            if let known = cache[key] { return known }
            let locked = """
                locked AS MATERIALIZED (
                    SELECT id FROM rota_tasks
                    WHERE state = 'scheduled' AND queue = $4 AND run_at <= $3\(nameCount == nil ? "" : " AND name = ANY($6::text[])")
                    ORDER BY priority DESC, run_at, id
                    LIMIT $5
                    FOR UPDATE SKIP LOCKED)
                """
            let update = """
                UPDATE rota_tasks t SET state = 'running', attempts = t.attempts + 1, lease_owner = $1, lease_until = $2,
                                        started_at = $3, updated_at = $3, cancel_requested = false, alone = false
                FROM locked WHERE t.id = locked.id
                RETURNING t.id, t.name, t.queue, t.payload, t.attempts, t.max_attempts, t.timeout_ms, t.priority, t.run_at, t.losses
                """
            // Counted: count rows locked in key order (byte order, as the store's own count writes sort them).
            let sql = !counted ? "WITH \(locked)\n\(update)" : """
                WITH \(locked),
                claimed AS (\(update)),
                counted AS (
                    INSERT INTO rota_task_counts(queue, name, state, n)
                    SELECT g.queue, g.name, s.state, s.n
                    FROM (SELECT queue, name, count(*) AS k FROM claimed GROUP BY queue, name) AS g
                    CROSS JOIN LATERAL (VALUES ('running', g.k), ('scheduled', -g.k)) AS s(state, n)
                    ORDER BY g.queue COLLATE "C", g.name COLLATE "C", s.state COLLATE "C"
                    ON CONFLICT (queue, name, state) DO UPDATE SET n = rota_task_counts.n + excluded.n)
                SELECT * FROM claimed
                """
            cache[key] = sql
            return sql
        }
    }

    /// Records attempt ends inside the caller's transaction, in order (of two ends of one attempt, the first
    /// applies), each only while its attempt holds the lease. Successes go in one statement.
    static func record(_ completions: [Completion], _ connection: PostgresConnection, _ logger: Logger,
                       counting counts: inout TransitionCounts) async throws -> [Bool] {
        var applied = [Bool](repeating: false, count: completions.count)
        if completions.isEmpty { return applied }
        // Successes first, in one statement; an attempt ended twice in one turn keeps its first end only.
        var firstEnd: [String: Int] = [:]
        for (index, completion) in completions.enumerated() {
            let key = "\(completion.taskID)/\(completion.attempt)/\(completion.worker)"
            if firstEnd[key] == nil { firstEnd[key] = index }
        }
        let successes = completions.indices.filter { index in
            if case .succeeded = completions[index].resolution {
                let completion = completions[index]
                return firstEnd["\(completion.taskID)/\(completion.attempt)/\(completion.worker)"] == index
            }
            return false
        }
        if !successes.isEmpty {
            var binds = PostgresBindings(capacity: 7)
            binds.append(successes.map { completions[$0].taskID })
            binds.append(successes.map { completions[$0].attempt })
            binds.append(successes.map { completions[$0].worker })
            binds.append(successes.map { completions[$0].startedAt.unixMillis })
            binds.append(successes.map { completions[$0].finishedAt.unixMillis })
            // Results as text with a flag for NULL (an array of optionals does not bind).
            let results = successes.map { index -> String? in
                if case .succeeded(let result) = completions[index].resolution { return result }
                return nil
            }
            binds.append(results.map { $0 ?? "" })
            binds.append(results.map { $0 != nil })
            let done = try await connection.rows(PostgresQuery(unsafeSQL: """
                WITH c AS (SELECT id, attempt, worker, started_at, finished_at, CASE WHEN has_result THEN result END AS result
                           FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::bool[])
                                AS c(id, attempt, worker, started_at, finished_at, result, has_result)),
                done AS (
                    UPDATE rota_tasks t SET state = 'succeeded', lease_owner = NULL, lease_until = NULL,
                                            finished_at = c.finished_at, updated_at = c.finished_at
                    FROM c
                    WHERE t.id = c.id AND t.attempts = c.attempt AND t.lease_owner = c.worker AND t.state = 'running'
                    RETURNING t.id, t.queue, t.name, c.attempt, c.worker, c.started_at, c.finished_at, c.result),
                recorded AS (
                    INSERT INTO rota_attempts(task_id, attempt, worker, started_at, finished_at, outcome, result)
                    SELECT id, attempt, worker, started_at, finished_at, 'succeeded', result FROM done
                    ON CONFLICT DO NOTHING)
                SELECT id, queue, name FROM done
                """, binds: binds), logger) { (try $0.int64(0), try $0.string(1), try $0.string(2)) }
            var doneIDs: Set<Int64> = []
            for (id, queue, name) in done {
                doneIDs.insert(id)
                counts.add(queue: queue, name: name, from: .running, to: .succeeded)
            }
            for index in successes where doneIDs.contains(completions[index].taskID) { applied[index] = true }
        }
        for (index, completion) in completions.enumerated() {
            if case .succeeded = completion.resolution { continue }
            let key = "\(completion.taskID)/\(completion.attempt)/\(completion.worker)"
            // An attempt that already ended in this turn (its first end applied, or did not) does not end again.
            if firstEnd[key] != index { continue }
            applied[index] = try await completeOther(completion, connection, logger)
        }
        return applied
    }

    /// Records one attempt end other than a success; false when the attempt no longer holds the lease.
    static func completeOther(_ completion: Completion, _ connection: PostgresConnection, _ logger: Logger) async throws -> Bool {
        let finished = completion.finishedAt.unixMillis
        let id = completion.taskID, attempt = completion.attempt, worker = completion.worker
        let outcome: AttemptOutcome
        let error: String
        let query: PostgresQuery
        switch completion.resolution {
        case .succeeded:
            preconditionFailure("successes are recorded together by record(_:)")
        case .retry(let kind, let message, let runAt):
            outcome = kind
            error = message
            // A cancel requested while the attempt ran wins over the retry.
            query = """
                UPDATE rota_tasks SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'scheduled' END,
                                      finished_at = CASE WHEN cancel_requested THEN \(finished) END,
                                      lease_owner = NULL, lease_until = NULL, run_at = \(runAt.unixMillis),
                                      last_error = \(message), updated_at = \(finished)
                WHERE id = \(id) AND attempts = \(attempt) AND lease_owner = \(worker) AND state = 'running'
                RETURNING id
                """
        case .dead(let kind, let message):
            outcome = kind
            error = message
            query = """
                UPDATE rota_tasks SET state = 'dead', lease_owner = NULL, lease_until = NULL, finished_at = \(finished),
                                      last_error = \(message), updated_at = \(finished)
                WHERE id = \(id) AND attempts = \(attempt) AND lease_owner = \(worker) AND state = 'running'
                RETURNING id
                """
        case .cancelled(let reason):
            outcome = .cancelled
            error = reason
            query = """
                UPDATE rota_tasks SET state = 'cancelled', lease_owner = NULL, lease_until = NULL, finished_at = \(finished),
                                      last_error = \(reason), updated_at = \(finished)
                WHERE id = \(id) AND attempts = \(attempt) AND lease_owner = \(worker) AND state = 'running'
                RETURNING id
                """
        case .handBack(let reason):
            outcome = .cancelled
            error = reason
            // A shutdown does not use up an attempt.
            query = """
                UPDATE rota_tasks SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'scheduled' END,
                                      finished_at = CASE WHEN cancel_requested THEN \(finished) END,
                                      lease_owner = NULL, lease_until = NULL, run_at = \(finished), updated_at = \(finished),
                                      max_attempts = max_attempts + 1
                WHERE id = \(id) AND attempts = \(attempt) AND lease_owner = \(worker) AND state = 'running'
                RETURNING id
                """
        }
        guard try await !connection.rows(query, logger, { try $0.int64(0) }).isEmpty else { return false }
        try await connection.run("""
            INSERT INTO rota_attempts(task_id, attempt, worker, started_at, finished_at, outcome, error)
            VALUES (\(id), \(attempt), \(worker), \(completion.startedAt.unixMillis), \(finished), \(outcome.rawValue), \(error))
            ON CONFLICT DO NOTHING
            """, logger)
        return true
    }

    public func nextRunAt(queues: [String], names: [String]?) async throws -> Date? {
        if names?.isEmpty == true || queues.isEmpty { return nil }
        return try await read { [logger] connection in
            var earliest: Int64?
            // One index seek per queue (and priority level reached), as the claim walks it.
            for queue in queues {
                let value: Int64?
                if let names {
                    value = try await connection.rows("""
                        SELECT min(run_at) FROM rota_tasks WHERE state = 'scheduled' AND queue = \(queue) AND name = ANY(\(names))
                        """, logger) { try $0.optionalInt64(0) }.first ?? nil
                } else {
                    value = try await connection.rows("""
                        SELECT min(run_at) FROM rota_tasks WHERE state = 'scheduled' AND queue = \(queue)
                        """, logger) { try $0.optionalInt64(0) }.first ?? nil
                }
                if let value { earliest = min(earliest ?? value, value) }
            }
            return earliest.map { Date(unixMillis: $0) }
        }
    }

    public func countUnfinished(queues: [String], names: [String]?) async throws -> Int {
        try await read { [logger] connection in
            if let names {
                return try await connection.rows("""
                    SELECT coalesce(sum(n), 0)::bigint FROM rota_task_counts WHERE state IN ('scheduled', 'running')
                    AND queue = ANY(\(queues)) AND name = ANY(\(names))
                    """, logger) { try $0.int(0) }.first ?? 0
            }
            return try await connection.rows("""
                SELECT coalesce(sum(n), 0)::bigint FROM rota_task_counts WHERE state IN ('scheduled', 'running')
                AND queue = ANY(\(queues))
                """, logger) { try $0.int(0) }.first ?? 0
        }
    }
}

/// Tasks moved by one transaction along the transitions the store counts itself (inserts, claims,
/// successes), per queue, name and state, written to rota_task_counts in one statement.
struct TransitionCounts {
    private var deltas: [Key: Int64] = [:]

    struct Key: Hashable, Comparable {
        var queue: String, name: String, state: String
        static func < (a: Key, b: Key) -> Bool { (a.queue, a.name, a.state) < (b.queue, b.name, b.state) }
    }

    /// Adds one task to `to`'s count (and takes it from `from`'s).
    mutating func add(queue: String, name: String, from: TaskState? = nil, to: TaskState = .scheduled) {
        if let from { deltas[Key(queue: queue, name: name, state: from.rawValue), default: 0] -= 1 }
        deltas[Key(queue: queue, name: name, state: to.rawValue), default: 0] += 1
    }

    /// Writes the counts (rows in key order, so two transactions lock them in the same order).
    func record(_ connection: PostgresConnection, _ logger: Logger, from: TaskState? = nil, to: TaskState? = nil) async throws {
        if deltas.allSatisfy({ $0.value == 0 }) { return }
        var binds = PostgresBindings(capacity: 4)
        append(to: &binds)
        try await connection.run(PostgresQuery(unsafeSQL: Self.upsertSQL(from: 1), binds: binds), logger)
    }

    /// Appends the changes, in key order (the order rows are locked in), as four arrays: queue, name, state
    /// and delta (the binds of ``upsertSQL(from:)``).
    func append(to binds: inout PostgresBindings) {
        let rows = deltas.filter { $0.value != 0 }.sorted { $0.key < $1.key }
        binds.append(rows.map(\.key.queue))
        binds.append(rows.map(\.key.name))
        binds.append(rows.map(\.key.state))
        binds.append(rows.map(\.value))
    }

    /// The upsert of the changes, its four arrays bound from `$first` on.
    static func upsertSQL(from first: Int) -> String {
        """
        INSERT INTO rota_task_counts(queue, name, state, n)
        SELECT * FROM unnest($\(first)::text[], $\(first + 1)::text[], $\(first + 2)::text[], $\(first + 3)::bigint[])
        ON CONFLICT (queue, name, state) DO UPDATE SET n = rota_task_counts.n + excluded.n
        """
    }
}

// MARK: Rows

extension PostgresConnection {
    /// Runs `query` and maps every row.
    func rows<T>(_ query: PostgresQuery, _ logger: Logger, _ map: (PostgresRandomAccessRow) throws -> T) async throws -> [T] {
        var out: [T] = []
        for try await row in try await send(query, logger) {
            out.append(try map(row.makeRandomAccess()))
        }
        return out
    }

    /// Runs `sql` with `binds` and maps every row.
    func rows<T>(_ sql: String, _ binds: [any PostgresDynamicTypeEncodable], _ logger: Logger,
                 _ map: (PostgresRandomAccessRow) throws -> T) async throws -> [T] {
        var bindings = PostgresBindings(capacity: binds.count)
        for value in binds { bindings.append(value) }
        return try await rows(PostgresQuery(unsafeSQL: sql, binds: bindings), logger, map)
    }

    /// Runs `query`, discarding its rows.
    func run(_ query: PostgresQuery, _ logger: Logger) async throws {
        for try await _ in try await send(query, logger) {}
    }

    /// `query(_:logger:)`, but never sent on a closed connection: it fails at once instead.
    ///
    /// postgres-nio 1.33 writes a query to its channel without a promise, so a query sent on a connection
    /// the server has just closed (a restart, `pg_terminate_backend`) is dropped by the closed channel and
    /// its caller waits forever (vapor/postgres-nio#487, reverted in #501). That wedged a scheduler for
    /// good when the server restarted between two statements of its transaction. Checking ``isClosed``
    /// and writing the query in one job on the connection's event loop, where the channel closes, leaves
    /// no gap: an open channel takes the query, and its handler fails it if the connection then closes.
    func send(_ query: PostgresQuery, _ logger: Logger) async throws -> PostgresRowSequence {
        try await withTaskExecutorPreference(EventLoopTaskExecutor(eventLoop)) {
            guard !isClosed else {
                throw RotaError(.busy, "the connection to PostgreSQL closed (the server restarted or ended it); nothing was written, retry")
            }
            // No suspension before the write inside `query`: this runs on the event loop, in this job.
            return try await self.query(query, logger: logger)
        }
    }
}

/// Runs a task's jobs on a NIO event loop (see ``PostgresConnection/send(_:_:)``).
final class EventLoopTaskExecutor: TaskExecutor {
    let loop: any EventLoop

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        loop.execute { job.runSynchronously(on: executor) }
    }
}

extension PostgresRandomAccessRow {
    func int64(_ index: Int) throws -> Int64 { try self[index].decode(Int64.self) }
    func int(_ index: Int) throws -> Int { try self[index].decode(Int.self) }
    func string(_ index: Int) throws -> String { try self[index].decode(String.self) }
    func bool(_ index: Int) throws -> Bool { try self[index].decode(Bool.self) }
    func optionalInt64(_ index: Int) throws -> Int64? { try self[index].decode(Int64?.self) }
    func optionalString(_ index: Int) throws -> String? { try self[index].decode(String?.self) }
    func date(_ index: Int) throws -> Date { Date(unixMillis: try int64(index)) }
    func optionalDate(_ index: Int) throws -> Date? { try optionalInt64(index).map { Date(unixMillis: $0) } }
}

/// Its pool runs transactions side by side: the scheduler records attempt ends beside its claims.
extension PostgresTaskStore: ConcurrentWriting {}
