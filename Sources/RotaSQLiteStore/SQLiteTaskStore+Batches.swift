import Foundation
import Rota
import RotaSQLite

extension SQLiteTaskStore {
    private static let batchColumns = "id, name, queue, total, finished, sealed, on_complete, created_at, completed_at"

    private static func batchRecord(_ row: Statement) -> BatchRecord {
        BatchRecord(id: row.int64(0), name: row.string(1), queue: row.string(2), total: row.int(3), finished: row.int(4),
                    sealed: row.int64(5) != 0, onComplete: row.optionalString(6), createdAt: Date(unixMillis: row.int64(7)),
                    completedAt: row.optionalInt64(8).map { Date(unixMillis: $0) })
    }

    public func openBatch(_ spec: BatchSpec) async throws -> BatchRecord {
        try await io { [self] in
            try write { db in
                try db.run("""
                    INSERT INTO batches(name, queue, on_complete, created_at) VALUES (?1, ?2, ?3, ?4)
                    ON CONFLICT(name) DO UPDATE SET sealed = 0, on_complete = coalesce(excluded.on_complete, on_complete)
                    """, [.text(spec.name), .text(spec.queue), .string(spec.onComplete), .integer(Self.now())])
                return try db.queryFirst("SELECT \(Self.batchColumns) FROM batches WHERE name = ?", [.text(spec.name)], Self.batchRecord)!
            }
        }
    }

    /// Marks submission finished: completion (and its `on_complete` task) can fire from now on, at once
    /// when every item already finished.
    public func sealBatch(_ batch: Int64) async throws -> BatchRecord {
        try await io { [self] in
            try write { db in
                try db.run("UPDATE batches SET sealed = 1 WHERE id = ?", [.integer(batch)])
                guard let record = try db.queryFirst("SELECT \(Self.batchColumns) FROM batches WHERE id = ?", [.integer(batch)], Self.batchRecord) else {
                    throw RotaError(.notFound, "no batch with id \(batch)")
                }
                return record
            }
        }
    }

    /// One batch by name, or nil.
    public func batch(named name: String) async throws -> BatchRecord? {
        try await io { [self] in
            try read { db in try db.queryFirst("SELECT \(Self.batchColumns) FROM batches WHERE name = ?", [.text(name)], Self.batchRecord) }
        }
    }

    /// Every batch, newest first.
    public func batches(limit: Int = 1_000) async throws -> [BatchRecord] {
        try await io { [self] in
            try read { db in
                try db.query("SELECT \(Self.batchColumns) FROM batches ORDER BY id DESC LIMIT ?", [.integer(Int64(limit))], Self.batchRecord)
            }
        }
    }

    /// A batch's counts per state, recent rate and first/last finish.
    /// - Throws: ``RotaError`` `.notFound` for an unknown batch.
    public func batchStatus(_ name: String, now: Date = Date()) async throws -> BatchStatus {
        try await io { [self] in
            try read { db in
                guard let batch = try db.queryFirst("SELECT \(Self.batchColumns) FROM batches WHERE name = ?", [.text(name)], Self.batchRecord) else {
                    throw RotaError(.notFound, "no batch named \(name)")
                }
                var states: [TaskState: Int] = Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, 0) })
                for (state, count) in try db.query("SELECT state, count(*) FROM tasks WHERE batch_id = ? GROUP BY state",
                                                   [.integer(batch.id)], { ($0.string(0), $0.int(1)) }) {
                    if let state = TaskState(rawValue: state) { states[state] = count }
                }
                let window = try db.queryFirst("""
                    SELECT count(*) FILTER (WHERE finished_at >= ?2), min(finished_at), max(finished_at)
                    FROM tasks WHERE batch_id = ?1 AND finished_at IS NOT NULL
                    """, [.integer(batch.id), .integer(now.unixMillis - 60_000)]) {
                    ($0.int(0), $0.optionalInt64(1), $0.optionalInt64(2))
                }
                return BatchStatus(batch: batch, states: states, finishedLastMinute: window?.0 ?? 0,
                                   firstFinishedAt: window?.1.map { Date(unixMillis: $0) },
                                   lastFinishedAt: window?.2.map { Date(unixMillis: $0) })
            }
        }
    }

    /// Retries a batch's `dead` items (due now, with one more attempt).
    /// - Returns: how many were rescheduled.
    public func retryBatch(_ name: String, now: Date = Date()) async throws -> Int {
        try await io { [self] in
            try write { db in
                guard let id = try db.scalarInt("SELECT id FROM batches WHERE name = ?", [.text(name)]) else {
                    throw RotaError(.notFound, "no batch named \(name)")
                }
                return try db.run(Self.retrySQL + " WHERE batch_id = ?2 AND state = 'dead'", [.integer(now.unixMillis), .integer(id)])
            }
        }
    }

    /// Cancels a batch: its `scheduled` items become `cancelled`, its `running` ones are asked to stop.
    /// - Returns: (cancelled, asked to stop).
    public func cancelBatch(_ name: String, now: Date = Date()) async throws -> (cancelled: Int, requested: Int) {
        try await io { [self] in
            try write { db in
                guard let id = try db.scalarInt("SELECT id FROM batches WHERE name = ?", [.text(name)]) else {
                    throw RotaError(.notFound, "no batch named \(name)")
                }
                let cancelled = try db.run(Self.cancelBatchSQL, [.integer(now.unixMillis), .integer(id)])
                let requested = try db.run("UPDATE tasks SET cancel_requested = 1, updated_at = ?1 WHERE batch_id = ?2 AND state = 'running'",
                                           [.integer(now.unixMillis), .integer(id)])
                return (cancelled, requested)
            }
        }
    }

    /// Cancels the scheduled items of batch ?2 at ?1.
    static let cancelBatchSQL = """
        UPDATE tasks SET state = 'cancelled', finished_at = ?1, updated_at = ?1, last_error = coalesce(last_error, 'batch cancelled')
        WHERE batch_id = ?2 AND state = 'scheduled'
        """
}
