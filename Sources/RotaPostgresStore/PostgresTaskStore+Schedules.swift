import Foundation
import Logging
import PostgresNIO
import Rota

// MARK: Schedules

extension PostgresTaskStore {
    private static let scheduleColumns = """
        name, expression, timezone, task_name, payload, queue, priority, max_attempts, timeout_ms, missed, missed_cap,
        overlap, source, active, next_fire_at, last_fire_at, created_at, updated_at, jitter_ms
        """

    private static func scheduleRecord(_ row: PostgresRandomAccessRow) throws -> ScheduleRecord {
        let missed: MissedRunPolicy
        switch try row.string(9) {
        case "once": missed = .once
        case "all": missed = .all(cap: try row.int(10))
        default: missed = .skip
        }
        let spec = ScheduleSpec(
            name: try row.string(0), expression: try row.string(1), timeZone: try row.string(2), taskName: try row.string(3),
            payload: try row.string(4), queue: try row.string(5), priority: try row.int(6), maxAttempts: try row.int(7),
            timeout: try row.optionalInt64(8).map { .milliseconds($0) }, missed: missed,
            overlap: OverlapPolicy(rawValue: try row.string(11)) ?? .allow,
            jitter: try row.optionalInt64(18).map { .milliseconds($0) }, source: try row.optionalString(12))
        return ScheduleRecord(spec: spec, active: try row.bool(13), nextFireAt: try row.optionalDate(14),
                              lastFireAt: try row.optionalDate(15), createdAt: try row.date(16), updatedAt: try row.date(17))
    }

    private static func missedColumns(_ policy: MissedRunPolicy) -> (name: String, cap: Int) {
        switch policy {
        case .skip: ("skip", MissedRunPolicy.defaultCap)
        case .once: ("once", MissedRunPolicy.defaultCap)
        case .all(let cap): ("all", cap)
        }
    }

    public func syncSchedules(_ specs: [ScheduleSpec], now: Date,
                              firstFire: @escaping @Sendable (ScheduleSpec) -> Date?) async throws -> ScheduleSyncResult {
        for spec in specs {
            try TaskSpec(name: spec.taskName, payload: spec.payload, queue: spec.queue, priority: spec.priority,
                         maxAttempts: spec.maxAttempts, timeout: spec.timeout).validate(maxPayloadBytes: maxPayloadBytes)
            if spec.name.isEmpty { throw RotaError(.invalidInput, field: "schedule", "a schedule needs a name") }
        }
        let nowMs = now.unixMillis
        return try await write { [logger] connection in
            // Schedulers syncing at once take turns (the lock ends with the transaction).
            try await connection.run("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.rota_schedules'))", logger)
            var result = ScheduleSyncResult(added: [], changed: [], removed: [])
            var existing: [String: ScheduleRecord] = [:]
            for record in try await connection.rows("SELECT \(unescaped: Self.scheduleColumns) FROM rota_schedules ORDER BY name",
                                                    logger, Self.scheduleRecord) {
                existing[record.spec.name] = record
            }
            for spec in specs {
                let missed = Self.missedColumns(spec.missed)
                let timeout = spec.timeout?.milliseconds
                let jitter = spec.jitter?.milliseconds
                if let old = existing[spec.name] {
                    let timingChanged = old.spec.expression != spec.expression || old.spec.timeZone != spec.timeZone
                    if old.spec != spec || !old.active {
                        try await connection.run("""
                            UPDATE rota_schedules SET expression = \(spec.expression), timezone = \(spec.timeZone),
                                task_name = \(spec.taskName), payload = \(spec.payload), queue = \(spec.queue),
                                priority = \(spec.priority), max_attempts = \(spec.maxAttempts), timeout_ms = \(timeout),
                                missed = \(missed.name), missed_cap = \(missed.cap), overlap = \(spec.overlap.rawValue),
                                source = \(spec.source), jitter_ms = \(jitter), updated_at = \(nowMs), active = true
                            WHERE name = \(spec.name)
                            """, logger)
                        if old.spec != spec { result.changed.append(spec.name) }
                    }
                    if timingChanged || !old.active || old.nextFireAt == nil {
                        try await connection.run("""
                            UPDATE rota_schedules SET next_fire_at = \(firstFire(spec)?.unixMillis) WHERE name = \(spec.name)
                            """, logger)
                    }
                } else {
                    try await connection.run("""
                        INSERT INTO rota_schedules(name, expression, timezone, task_name, payload, queue, priority, max_attempts,
                            timeout_ms, missed, missed_cap, overlap, source, jitter_ms, created_at, updated_at, next_fire_at, active)
                        VALUES (\(spec.name), \(spec.expression), \(spec.timeZone), \(spec.taskName), \(spec.payload),
                                \(spec.queue), \(spec.priority), \(spec.maxAttempts), \(timeout), \(missed.name), \(missed.cap),
                                \(spec.overlap.rawValue), \(spec.source), \(jitter), \(nowMs), \(nowMs), \(firstFire(spec)?.unixMillis), true)
                        """, logger)
                    result.added.append(spec.name)
                }
            }
            let names = Set(specs.map(\.name))
            for (name, record) in existing.sorted(by: { $0.key < $1.key }) where record.active && !names.contains(name) {
                try await connection.run("UPDATE rota_schedules SET active = false, updated_at = \(nowMs) WHERE name = \(name)", logger)
                result.removed.append(name)
            }
            return result
        }
    }

    public func fireDueSchedules(now: Date, plan: @escaping @Sendable (ScheduleRecord) -> FirePlan) async throws -> [EnqueueResult] {
        let nowMs = now.unixMillis
        return try await write { [logger] connection in
            // A schedule another scheduler is firing right now is skipped: it fires it (each instant's task is
            // unique per schedule and instant, so no instant ever fires twice whatever the timing).
            let due = try await connection.rows("""
                SELECT \(unescaped: Self.scheduleColumns) FROM rota_schedules
                WHERE active AND next_fire_at IS NOT NULL AND next_fire_at <= \(nowMs)
                ORDER BY name
                FOR UPDATE SKIP LOCKED
                """, logger, Self.scheduleRecord)
            var results: [EnqueueResult] = []
            var counts = TransitionCounts()
            var firedQueues: Set<String> = []
            for schedule in due {
                let decided = plan(schedule)
                var fires = decided.fires
                if schedule.spec.overlap == .skip, !fires.isEmpty {
                    let busy = try await connection.rows("""
                        SELECT state IN ('scheduled', 'running') FROM rota_tasks WHERE schedule = \(schedule.spec.name)
                        ORDER BY fire_at DESC LIMIT 1
                        """, logger, { try $0.bool(0) }).first ?? false
                    fires = busy ? [] : [fires.last!]
                }
                let spec = schedule.spec
                for fire in fires {
                    let fireMs = fire.unixMillis
                    let runMs = spec.runAt(forFire: fire).unixMillis
                    if let id = try await connection.rows("""
                        INSERT INTO rota_tasks(name, queue, payload, priority, run_at, max_attempts, timeout_ms, schedule, fire_at,
                                               created_at, updated_at)
                        VALUES (\(spec.taskName), \(spec.queue), \(spec.payload), \(spec.priority), \(runMs), \(spec.maxAttempts),
                                \(spec.timeout?.milliseconds), \(spec.name), \(fireMs), \(nowMs), \(nowMs))
                        ON CONFLICT DO NOTHING
                        RETURNING id
                        """, logger, { try $0.int64(0) }).first {
                        results.append(EnqueueResult(id: id, inserted: true))
                        counts.add(queue: spec.queue, name: spec.taskName)
                        firedQueues.insert(spec.queue)
                    } else if let id = try await connection.rows("""
                        SELECT id FROM rota_tasks WHERE schedule = \(spec.name) AND fire_at = \(fireMs)
                        """, logger, { try $0.int64(0) }).first {
                        results.append(EnqueueResult(id: id, inserted: false))
                    }
                }
                try await connection.run("""
                    UPDATE rota_schedules SET next_fire_at = \(decided.nextFireAt?.unixMillis),
                        last_fire_at = coalesce(\(fires.last?.unixMillis), last_fire_at), updated_at = \(nowMs)
                    WHERE name = \(spec.name)
                    """, logger)
            }
            try await counts.record(connection, logger)
            try await Self.notifyDue(firedQueues, connection, logger)
            return results
        }
    }

    public func schedules() async throws -> [ScheduleRecord] {
        try await read { [logger] connection in
            try await connection.rows("SELECT \(unescaped: Self.scheduleColumns) FROM rota_schedules ORDER BY active DESC, name",
                                      logger, Self.scheduleRecord)
        }
    }

    public func nextScheduleFire() async throws -> Date? {
        try await read { [logger] connection in
            try await connection.rows("SELECT min(next_fire_at) FROM rota_schedules WHERE active", logger) {
                try $0.optionalDate(0)
            }.first ?? nil
        }
    }
}

// MARK: Batches

extension PostgresTaskStore {
    private static let batchColumns = "id, name, queue, total, finished, sealed, on_complete, created_at, completed_at"

    private static func batchRecord(_ row: PostgresRandomAccessRow) throws -> BatchRecord {
        BatchRecord(id: try row.int64(0), name: try row.string(1), queue: try row.string(2), total: try row.int(3),
                    finished: try row.int(4), sealed: try row.bool(5), onComplete: try row.optionalString(6),
                    createdAt: try row.date(7), completedAt: try row.optionalDate(8))
    }

    public func openBatch(_ spec: BatchSpec) async throws -> BatchRecord {
        let task = spec.onCompleteTask
        let payload = task.map { $0.payload ?? BatchSpec.OnCompleteTask.defaultPayload(batch: spec.name) }
        let now = Self.now()
        return try await write { [logger] connection in
            try await connection.rows("""
                INSERT INTO rota_batches(name, queue, on_complete, on_complete_name, on_complete_queue, on_complete_payload, created_at)
                VALUES (\(spec.name), \(spec.queue), \(spec.onComplete), \(task?.name), \(task?.queue), \(payload), \(now))
                ON CONFLICT (name) DO UPDATE SET sealed = false,
                    on_complete = coalesce(excluded.on_complete, rota_batches.on_complete),
                    on_complete_name = CASE WHEN excluded.on_complete IS NULL THEN rota_batches.on_complete_name ELSE excluded.on_complete_name END,
                    on_complete_queue = CASE WHEN excluded.on_complete IS NULL THEN rota_batches.on_complete_queue ELSE excluded.on_complete_queue END,
                    on_complete_payload = CASE WHEN excluded.on_complete IS NULL THEN rota_batches.on_complete_payload ELSE excluded.on_complete_payload END
                RETURNING \(unescaped: Self.batchColumns)
                """, logger, Self.batchRecord).first!
        }
    }

    public func sealBatch(_ batch: Int64) async throws -> BatchRecord {
        try await write { [logger] connection in
            guard let record = try await connection.rows("""
                UPDATE rota_batches SET sealed = true WHERE id = \(batch) RETURNING \(unescaped: Self.batchColumns)
                """, logger, Self.batchRecord).first else {
                throw RotaError(.notFound, "no batch with id \(batch)")
            }
            return record
        }
    }

    public func batch(named name: String) async throws -> BatchRecord? {
        try await read { [logger] connection in
            try await connection.rows("SELECT \(unescaped: Self.batchColumns) FROM rota_batches WHERE name = \(name)",
                                      logger, Self.batchRecord).first
        }
    }

    public func batches(limit: Int) async throws -> [BatchRecord] {
        try await read { [logger] connection in
            try await connection.rows("SELECT \(unescaped: Self.batchColumns) FROM rota_batches ORDER BY id DESC LIMIT \(limit)",
                                      logger, Self.batchRecord)
        }
    }

    public func batchStatus(_ name: String, now: Date) async throws -> BatchStatus {
        try await write(isolation: " ISOLATION LEVEL REPEATABLE READ READ ONLY") { [logger] connection in
            guard let batch = try await connection.rows("SELECT \(unescaped: Self.batchColumns) FROM rota_batches WHERE name = \(name)",
                                                        logger, Self.batchRecord).first else {
                throw RotaError(.notFound, "no batch named \(name)")
            }
            var states: [TaskState: Int] = Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, 0) })
            for (state, count) in try await connection.rows("""
                SELECT state, count(*) FROM rota_tasks WHERE batch_id = \(batch.id) GROUP BY state
                """, logger, { (try $0.string(0), try $0.int(1)) }) {
                if let state = TaskState(rawValue: state) { states[state] = count }
            }
            let window = try await connection.rows("""
                SELECT count(*) FILTER (WHERE finished_at >= \(now.unixMillis - 60_000)), min(finished_at), max(finished_at)
                FROM rota_tasks WHERE batch_id = \(batch.id) AND finished_at IS NOT NULL
                """, logger) { (try $0.int(0), try $0.optionalDate(1), try $0.optionalDate(2)) }.first
            return BatchStatus(batch: batch, states: states, finishedLastMinute: window?.0 ?? 0,
                               firstFinishedAt: window?.1, lastFinishedAt: window?.2)
        }
    }

    public func retryBatch(_ name: String, now: Date) async throws -> Int {
        try await write { [logger] connection in
            guard let id = try await connection.rows("SELECT id FROM rota_batches WHERE name = \(name)", logger, { try $0.int64(0) }).first else {
                throw RotaError(.notFound, "no batch named \(name)")
            }
            return try await Self.retried(Self.retrySQL + " WHERE batch_id = $2 AND state = 'dead'",
                                          Self.binds(now.unixMillis, id), connection, logger)
        }
    }

    public func cancelBatch(_ name: String, now: Date) async throws -> (cancelled: Int, requested: Int) {
        let result = try await write { [logger] connection -> [Int] in
            guard let id = try await connection.rows("SELECT id FROM rota_batches WHERE name = \(name)", logger, { try $0.int64(0) }).first else {
                throw RotaError(.notFound, "no batch named \(name)")
            }
            let cancelled = try await connection.rows("""
                WITH c AS (
                    UPDATE rota_tasks SET state = 'cancelled', finished_at = \(now.unixMillis), updated_at = \(now.unixMillis),
                                          last_error = coalesce(last_error, 'batch cancelled')
                    WHERE batch_id = \(id) AND state = 'scheduled' RETURNING 1)
                SELECT count(*) FROM c
                """, logger) { try $0.int(0) }.first ?? 0
            let requested = try await connection.rows("""
                WITH r AS (
                    UPDATE rota_tasks SET cancel_requested = true, updated_at = \(now.unixMillis)
                    WHERE batch_id = \(id) AND state = 'running' RETURNING 1)
                SELECT count(*) FROM r
                """, logger) { try $0.int(0) }.first ?? 0
            return [cancelled, requested]
        }
        return (result[0], result[1])
    }
}
