import Foundation
import Rota
import RotaSQLite

extension SQLiteTaskStore {
    private static let scheduleColumns = """
        name, expression, timezone, task_name, payload, queue, priority, max_attempts, timeout_ms, missed, missed_cap,
        overlap, source, active, next_fire_at, last_fire_at, created_at, updated_at, jitter_ms
        """

    private static func scheduleRecord(_ row: Statement) -> ScheduleRecord {
        let spec = ScheduleSpec(
            name: row.string(0), expression: row.string(1), timeZone: row.string(2), taskName: row.string(3),
            payload: row.string(4), queue: row.string(5), priority: row.int(6), maxAttempts: row.int(7),
            timeout: row.optionalInt64(8).map { .milliseconds($0) },
            missed: Self.missedPolicy(row.string(9), cap: row.int(10)), overlap: OverlapPolicy(rawValue: row.string(11)) ?? .allow,
            jitter: row.optionalInt64(18).map { .milliseconds($0) }, source: row.optionalString(12))
        return ScheduleRecord(spec: spec, active: row.int64(13) != 0,
                              nextFireAt: row.optionalInt64(14).map { Date(unixMillis: $0) },
                              lastFireAt: row.optionalInt64(15).map { Date(unixMillis: $0) },
                              createdAt: Date(unixMillis: row.int64(16)), updatedAt: Date(unixMillis: row.int64(17)))
    }

    static func missedPolicy(_ name: String, cap: Int) -> MissedRunPolicy {
        switch name {
        case "once": .once
        case "all": .all(cap: cap)
        default: .skip
        }
    }

    static func missedColumns(_ policy: MissedRunPolicy) -> (name: String, cap: Int) {
        switch policy {
        case .skip: ("skip", MissedRunPolicy.defaultCap)
        case .once: ("once", MissedRunPolicy.defaultCap)
        case .all(let cap): ("all", cap)
        }
    }

    /// Makes the stored schedules match `specs` in one transaction: new ones are added with their first
    /// fire, changed ones are updated (their next fire recomputed when the expression or zone changed),
    /// and schedules absent from `specs` are deactivated (their history stays).
    ///
    /// - Parameters:
    ///   - specs: every schedule the files define.
    ///   - now: the current instant.
    ///   - firstFire: the first fire strictly after `now` for a spec.
    /// - Throws: ``RotaError`` `.invalidInput` for a bad spec (nothing written).
    public func syncSchedules(_ specs: [ScheduleSpec], now: Date, firstFire: @escaping @Sendable (ScheduleSpec) -> Date?) async throws -> ScheduleSyncResult {
        try await io { [self] in
            for spec in specs {
                try TaskSpec(name: spec.taskName, payload: spec.payload, queue: spec.queue, priority: spec.priority,
                             maxAttempts: spec.maxAttempts, timeout: spec.timeout).validate(maxPayloadBytes: maxPayloadBytes)
                if spec.name.isEmpty { throw RotaError(.invalidInput, field: "schedule", "a schedule needs a name") }
            }
            let nowMs = now.unixMillis
            return try write { db in
                var result = ScheduleSyncResult(added: [], changed: [], removed: [])
                let existing = Dictionary(
                    try db.query("SELECT \(Self.scheduleColumns) FROM schedules", [], Self.scheduleRecord).map { ($0.spec.name, $0) },
                    uniquingKeysWith: { first, _ in first })
                for spec in specs {
                    let values: [SQLiteValue] = [
                        .text(spec.name), .text(spec.expression), .text(spec.timeZone), .text(spec.taskName), .text(spec.payload),
                        .text(spec.queue), .integer(Int64(spec.priority)), .integer(Int64(spec.maxAttempts)),
                        .int(spec.timeout?.milliseconds), .text(Self.missedColumns(spec.missed).name), .integer(Int64(Self.missedColumns(spec.missed).cap)),
                        .text(spec.overlap.rawValue), .string(spec.source), .integer(nowMs), .int(spec.jitter?.milliseconds),
                    ]
                    if let old = existing[spec.name] {
                        let timingChanged = old.spec.expression != spec.expression || old.spec.timeZone != spec.timeZone
                        if old.spec != spec || !old.active {
                            try db.run("""
                                UPDATE schedules SET expression = ?2, timezone = ?3, task_name = ?4, payload = ?5, queue = ?6,
                                    priority = ?7, max_attempts = ?8, timeout_ms = ?9, missed = ?10, missed_cap = ?11,
                                    overlap = ?12, source = ?13, updated_at = ?14, jitter_ms = ?15, active = 1
                                WHERE name = ?1
                                """, values)
                            if old.spec != spec { result.changed.append(spec.name) }
                        }
                        if timingChanged || !old.active || old.nextFireAt == nil {
                            try db.run("UPDATE schedules SET next_fire_at = ?2 WHERE name = ?1",
                                       [.text(spec.name), .int(firstFire(spec)?.unixMillis)])
                        }
                    } else {
                        try db.run("""
                            INSERT INTO schedules(name, expression, timezone, task_name, payload, queue, priority, max_attempts,
                                timeout_ms, missed, missed_cap, overlap, source, created_at, updated_at, jitter_ms, next_fire_at, active)
                            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15, ?16, 1)
                            """, values + [.int(firstFire(spec)?.unixMillis)])
                        result.added.append(spec.name)
                    }
                }
                let names = Set(specs.map(\.name))
                for (name, record) in existing where record.active && !names.contains(name) {
                    try db.run("UPDATE schedules SET active = 0, updated_at = ?2 WHERE name = ?1", [.text(name), .integer(nowMs)])
                    result.removed.append(name)
                }
                return result
            }
        }
    }

    /// Fires every active schedule whose next fire is at or before `now`, in one transaction: enqueues a
    /// task per planned instant (unique per schedule and instant, so no instant ever fires twice, across
    /// restarts, clock jumps and several schedulers), due at the instant plus the schedule's jitter delay
    /// (``ScheduleSpec/runAt(forFire:)``), and advances the schedule.
    ///
    /// - Parameters:
    ///   - now: the current instant.
    ///   - plan: decides the fires and the next instant for a due schedule (see ``FirePlan/plan(due:now:policy:cap:grace:next:)``).
    /// - Returns: the tasks enqueued (`inserted == false` for an instant that had already fired).
    public func fireDueSchedules(now: Date, plan: @escaping @Sendable (ScheduleRecord) -> FirePlan) async throws -> [EnqueueResult] {
        try await io { [self] in
            let nowMs = now.unixMillis
            return try write { db in
                let due = try db.query("""
                    SELECT \(Self.scheduleColumns) FROM schedules
                    WHERE active = 1 AND next_fire_at IS NOT NULL AND next_fire_at <= ?1
                    """, [.integer(nowMs)], Self.scheduleRecord)
                var results: [EnqueueResult] = []
                var fired = TransitionCounts() // the store counts the tasks it inserts (migration 5)
                for schedule in due {
                    let decided = plan(schedule)
                    var fires = decided.fires
                    if schedule.spec.overlap == .skip, !fires.isEmpty {
                        let busy = try db.queryFirst("""
                            SELECT state IN ('scheduled', 'running') FROM tasks WHERE schedule = ?1 ORDER BY fire_at DESC LIMIT 1
                            """, [.text(schedule.spec.name)], { $0.int64(0) != 0 }) ?? false
                        fires = busy ? [] : [fires.last!]
                    }
                    for fire in fires {
                        try db.run("""
                            INSERT INTO tasks(name, queue, payload, priority, run_at, max_attempts, timeout_ms, schedule, fire_at,
                                              created_at, updated_at)
                            VALUES (?1, ?2, ?3, ?4, ?10, ?6, ?7, ?8, ?5, ?9, ?9)
                            ON CONFLICT DO NOTHING
                            """, [.text(schedule.spec.taskName), .text(schedule.spec.queue), .text(schedule.spec.payload),
                                  .integer(Int64(schedule.spec.priority)), .integer(fire.unixMillis),
                                  .integer(Int64(schedule.spec.maxAttempts)), .int(schedule.spec.timeout?.milliseconds),
                                  .text(schedule.spec.name), .integer(nowMs),
                                  .integer(schedule.spec.runAt(forFire: fire).unixMillis)])
                        if db.changes == 1 {
                            results.append(EnqueueResult(id: db.lastInsertRowID, inserted: true))
                            fired.add(queue: schedule.spec.queue, name: schedule.spec.taskName)
                        } else if let id = try db.scalarInt("SELECT id FROM tasks WHERE schedule = ? AND fire_at = ?",
                                                            [.text(schedule.spec.name), .integer(fire.unixMillis)]) {
                            results.append(EnqueueResult(id: id, inserted: false))
                        }
                    }
                    try db.run("""
                        UPDATE schedules SET next_fire_at = ?2, last_fire_at = coalesce(?3, last_fire_at), updated_at = ?4
                        WHERE name = ?1
                        """, [.text(schedule.spec.name), .int(decided.nextFireAt?.unixMillis),
                              .int(fires.last?.unixMillis), .integer(nowMs)])
                }
                try fired.record(db, from: nil, to: .scheduled)
                return results
            }
        }
    }

    /// Every stored schedule, active ones first, by name.
    public func schedules() async throws -> [ScheduleRecord] {
        try await io { [self] in
            try read { db in
                try db.query("SELECT \(Self.scheduleColumns) FROM schedules ORDER BY active DESC, name", [], Self.scheduleRecord)
            }
        }
    }

    /// The earliest next fire of any active schedule.
    public func nextScheduleFire() async throws -> Date? {
        try await io { [self] in
            try read { db in
                try db.scalarInt("SELECT min(next_fire_at) FROM schedules WHERE active = 1").map { Date(unixMillis: $0) }
            }
        }
    }
}
