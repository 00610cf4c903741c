import Foundation
import RotaSQLite

extension SQLiteTaskStore {
    private static let batchColumns = "id, name, queue, total, finished, sealed, on_complete, created_at, completed_at"

    private static func batchRecord(_ row: Statement) -> BatchRecord {
        BatchRecord(id: row.int64(0), name: row.string(1), queue: row.string(2), total: row.int(3), finished: row.int(4),
                    sealed: row.int64(5) != 0, onComplete: row.optionalString(6), createdAt: Date(unixMillis: row.int64(7)),
                    completedAt: row.optionalInt64(8).map { Date(unixMillis: $0) })
    }

    /// Checks an `on_complete` spec: a JSON object with a non-empty string `name`, and optionally a `payload`
    /// (object or array) and a `queue` (string).
    static func validateOnComplete(_ text: String) throws {
        let object = try? JSONSerialization.jsonObject(with: Data(text.utf8))
        guard let spec = object as? [String: Any] else {
            throw RotaError(.invalidInput, field: "on_complete", #"must be a JSON object like {"name": "report", "payload": {}}"#)
        }
        guard let name = spec["name"] as? String, !name.isEmpty else {
            throw RotaError(.invalidInput, field: "on_complete.name", "must be a non-empty string")
        }
        if let payload = spec["payload"], !(payload is [String: Any] || payload is [Any]) {
            throw RotaError(.invalidInput, field: "on_complete.payload", "must be a JSON object or array")
        }
        if let queue = spec["queue"], !((queue as? String).map { !$0.isEmpty } ?? false) {
            throw RotaError(.invalidInput, field: "on_complete.queue", "must be a non-empty string")
        }
    }

    /// Creates the batch `name`, or opens it for more items when it exists (a resumed submission).
    /// Opening unseals it until ``sealBatch(_:)``.
    ///
    /// - Parameters:
    ///   - name: the batch's unique name.
    ///   - queue: its default queue (only used when it is created).
    ///   - onComplete: a task spec, JSON `{"name", "payload"?, "queue"?}`, enqueued once when every item finished.
    /// - Throws: ``RotaError`` `.invalidInput` for an empty name or a bad `onComplete`.
    public func openBatch(name: String, queue: String = "default", onComplete: String? = nil) throws -> BatchRecord {
        if name.isBlank { throw RotaError(.invalidInput, field: "name", "a batch needs a name") }
        if let onComplete { try Self.validateOnComplete(onComplete) }
        return try write { db in
            try db.run("""
                INSERT INTO batches(name, queue, on_complete, created_at) VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT(name) DO UPDATE SET sealed = 0, on_complete = coalesce(excluded.on_complete, on_complete)
                """, [.text(name), .text(queue), .string(onComplete), .integer(Self.now())])
            return try db.queryFirst("SELECT \(Self.batchColumns) FROM batches WHERE name = ?", [.text(name)], Self.batchRecord)!
        }
    }

    /// Adds items to a batch in one transaction; items already present (same `batchItem`) are skipped.
    /// Each spec's `batchID` is set to `batch`; each must carry a `batchItem`.
    /// - Returns: how many were new.
    public func addBatchItems(_ batch: Int64, _ specs: [TaskSpec]) throws -> Int {
        var specs = specs
        for index in specs.indices {
            specs[index].batchID = batch
            if specs[index].batchItem == nil { throw RotaError(.invalidInput, field: "tasks[\(index)].batch_item", "is required in a batch") }
        }
        return try enqueueSync(specs).filter(\.inserted).count
    }

    /// Marks submission finished: completion (and its `on_complete` task) can fire from now on, at once
    /// when every item already finished.
    public func sealBatch(_ batch: Int64) throws -> BatchRecord {
        try write { db in
            try db.run("UPDATE batches SET sealed = 1 WHERE id = ?", [.integer(batch)])
            guard let record = try db.queryFirst("SELECT \(Self.batchColumns) FROM batches WHERE id = ?", [.integer(batch)], Self.batchRecord) else {
                throw RotaError(.notFound, "no batch with id \(batch)")
            }
            return record
        }
    }

    /// One batch by name, or nil.
    public func batch(named name: String) throws -> BatchRecord? {
        try read { db in try db.queryFirst("SELECT \(Self.batchColumns) FROM batches WHERE name = ?", [.text(name)], Self.batchRecord) }
    }

    /// Every batch, newest first.
    public func batches(limit: Int = 1_000) throws -> [BatchRecord] {
        try read { db in
            try db.query("SELECT \(Self.batchColumns) FROM batches ORDER BY id DESC LIMIT ?", [.integer(Int64(limit))], Self.batchRecord)
        }
    }

    /// A batch's counts per state, recent rate and first/last finish.
    /// - Throws: ``RotaError`` `.notFound` for an unknown batch.
    public func batchStatus(_ name: String, now: Date = Date()) throws -> BatchStatus {
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

    /// Retries a batch's `dead` items (due now, with one more attempt).
    /// - Returns: how many were rescheduled.
    public func retryBatch(_ name: String, now: Date = Date()) throws -> Int {
        try write { db in
            guard let id = try db.scalarInt("SELECT id FROM batches WHERE name = ?", [.text(name)]) else {
                throw RotaError(.notFound, "no batch named \(name)")
            }
            return try db.run(Self.retrySQL + " WHERE batch_id = ?2 AND state = 'dead'", [.integer(now.unixMillis), .integer(id)])
        }
    }

    /// Cancels a batch: its `scheduled` items become `cancelled`, its `running` ones are asked to stop.
    /// - Returns: (cancelled, asked to stop).
    public func cancelBatch(_ name: String, now: Date = Date()) throws -> (cancelled: Int, requested: Int) {
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

    /// Cancels the scheduled items of batch ?2 at ?1.
    static let cancelBatchSQL = """
        UPDATE tasks SET state = 'cancelled', finished_at = ?1, updated_at = ?1, last_error = coalesce(last_error, 'batch cancelled')
        WHERE batch_id = ?2 AND state = 'scheduled'
        """

    /// A batch's `dead` items with their last error, for reports.
    public func batchFailures(_ name: String, limit: Int = 1_000) async throws -> [TaskRecord] {
        try await list(TaskFilter(states: [.dead], batch: name, limit: limit))
    }
}

extension SQLiteTaskStore {
    /// Submits a batch from a sequence of payloads, restart-safe: item identity is the batch name plus the
    /// item's position, so running the same submission again adds only the missing items.
    ///
    /// ```swift
    /// let batch = try store.submitBatch(name: "resize-2026-11", taskName: "image.resize", payloads: files.map { Resize(path: $0) })
    /// let status = try await store.awaitBatch("resize-2026-11")
    /// ```
    /// - Parameters:
    ///   - name: the batch's unique name.
    ///   - taskName: the handler every item runs.
    ///   - payloads: the items' payloads, encoded as JSON.
    ///   - queue: the items' queue.
    ///   - maxAttempts: attempts per item.
    ///   - onComplete: a task spec JSON enqueued once when every item finished.
    ///   - chunk: items per transaction.
    /// - Returns: the sealed batch.
    public func submitBatch<S: Sequence>(name: String, taskName: String, payloads: S, queue: String = "default",
                                         maxAttempts: Int = 3, onComplete: String? = nil, chunk: Int = 10_000) throws -> BatchRecord
    where S.Element: Encodable {
        let batch = try openBatch(name: name, queue: queue, onComplete: onComplete)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var specs: [TaskSpec] = []
        specs.reserveCapacity(chunk)
        for (index, payload) in payloads.enumerated() {
            let text: String
            do { text = String(decoding: try encoder.encode(payload), as: UTF8.self) } catch {
                throw RotaError(.coding, field: "payloads[\(index)]", "cannot be encoded as JSON: \(error)")
            }
            specs.append(TaskSpec(name: taskName, payload: text, queue: queue, maxAttempts: maxAttempts, batchItem: String(index + 1)))
            if specs.count == chunk {
                _ = try addBatchItems(batch.id, specs)
                specs.removeAll(keepingCapacity: true)
            }
        }
        if !specs.isEmpty { _ = try addBatchItems(batch.id, specs) }
        return try sealBatch(batch.id)
    }

    /// Waits until every item of the batch finished (it is sealed and complete), polling its status.
    /// - Returns: the final status; its `.dead` count says how many failed (see ``batchFailures(_:limit:)``).
    public func awaitBatch(_ name: String, poll: Duration = .milliseconds(200)) async throws -> BatchStatus {
        while true {
            let status = try batchStatus(name)
            if status.batch.completedAt != nil { return status }
            try await Task.sleep(for: poll)
        }
    }
}
