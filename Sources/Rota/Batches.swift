import Foundation

/// A batch as stored: a named set of tasks submitted together, with its progress.
public struct BatchRecord: Sendable, Equatable {
    /// The batch's row id.
    public var id: Int64
    /// Its unique name.
    public var name: String
    /// Its default queue.
    public var queue: String
    /// Items submitted so far.
    public var total: Int
    /// Items that reached `succeeded`, `dead` or `cancelled`.
    public var finished: Int
    /// True once submission finished (completion can only fire then).
    public var sealed: Bool
    /// The task spec enqueued once at completion, JSON `{"name", "payload"?, "queue"?}`.
    public var onComplete: String?
    /// When it was created.
    public var createdAt: Date
    /// When every item finished (set once).
    public var completedAt: Date?

    /// `submitting` (not sealed yet), `running` (sealed, items left) or `complete`.
    public var phase: String { completedAt != nil ? "complete" : (sealed ? "running" : "submitting") }

    /// Creates a record (used by stores).
    public init(id: Int64, name: String, queue: String, total: Int, finished: Int, sealed: Bool, onComplete: String?,
                createdAt: Date, completedAt: Date?) {
        self.id = id; self.name = name; self.queue = queue; self.total = total; self.finished = finished
        self.sealed = sealed; self.onComplete = onComplete; self.createdAt = createdAt; self.completedAt = completedAt
    }
}

/// A batch's progress: counts per state, rate and ETA.
public struct BatchStatus: Sendable, Equatable {
    /// The batch.
    public var batch: BatchRecord
    /// Items per state (every state present).
    public var states: [TaskState: Int]
    /// Items finished in the last minute.
    public var finishedLastMinute: Int
    /// The first instant an item finished, for the overall rate.
    public var firstFinishedAt: Date?
    /// The last instant an item finished.
    public var lastFinishedAt: Date?

    /// Creates a status.
    public init(batch: BatchRecord, states: [TaskState: Int], finishedLastMinute: Int, firstFinishedAt: Date?, lastFinishedAt: Date?) {
        self.batch = batch; self.states = states; self.finishedLastMinute = finishedLastMinute
        self.firstFinishedAt = firstFinishedAt; self.lastFinishedAt = lastFinishedAt
    }

    /// Items still to finish.
    public var remaining: Int { max(0, batch.total - batch.finished) }

    /// Finished items per second: over the span of the recent finishes (at most the last minute).
    public var rate: Double? {
        guard let first = firstFinishedAt, let last = lastFinishedAt else { return nil }
        let span = last.timeIntervalSince(first)
        if span < 60 { return Double(batch.finished) / max(span, 1) }
        return finishedLastMinute > 0 ? Double(finishedLastMinute) / 60 : Double(batch.finished) / span
    }

    /// Seconds until every item finishes at the current rate.
    public var eta: TimeInterval? {
        guard remaining > 0, let rate, rate > 0 else { return remaining == 0 ? 0 : nil }
        return Double(remaining) / rate
    }
}

/// A batch to open, validated: a name that is not blank, and an `on_complete` task spec that is a JSON
/// object with a non-empty string `name`, and optionally a `payload` (object or array) and a `queue`.
public struct BatchSpec: Sendable, Equatable {
    /// The batch's unique name.
    public let name: String
    /// Its default queue (used when it is created).
    public let queue: String
    /// The task enqueued once when every item finished, as JSON `{"name", "payload"?, "queue"?}`.
    public let onComplete: String?

    /// Validates a batch spec.
    /// - Throws: ``RotaError`` `.invalidInput` naming the field (`name`, `on_complete.name`, ...).
    public init(name: String, queue: String = "default", onComplete: String? = nil, maxBytes: Int = 1 << 20) throws {
        if name.isBlank { throw RotaError(.invalidInput, field: "name", "a batch needs a name") }
        if queue.isBlank { throw RotaError(.invalidInput, field: "queue", "must not be empty") }
        if let onComplete { try Self.validateOnComplete(onComplete, maxBytes: maxBytes) }
        self.name = name
        self.queue = queue
        self.onComplete = onComplete
    }

    static func validateOnComplete(_ text: String, maxBytes: Int) throws {
        if text.utf8.count > maxBytes {
            throw RotaError(.invalidInput, field: "on_complete", "is \(text.utf8.count) bytes, over the limit of \(maxBytes) bytes")
        }
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
}

extension TaskStore {
    /// Creates the batch `name`, or opens it for more items when it exists (a resumed submission).
    /// Opening unseals it until ``sealBatch(_:)``.
    ///
    /// - Parameters:
    ///   - name: the batch's unique name.
    ///   - queue: its default queue (only used when it is created).
    ///   - onComplete: a task spec, JSON `{"name", "payload"?, "queue"?}`, enqueued once when every item finished.
    /// - Throws: ``RotaError`` `.invalidInput` for an empty name or a bad `onComplete`.
    public func openBatch(name: String, queue: String = "default", onComplete: String? = nil) async throws -> BatchRecord {
        try await openBatch(BatchSpec(name: name, queue: queue, onComplete: onComplete, maxBytes: maxPayloadBytes))
    }

    /// Adds items to a batch in one transaction; items already present (same `batchItem`) are skipped.
    /// Each spec's `batchID` is set to `batch`; each must carry a `batchItem`.
    /// - Returns: how many were new.
    public func addBatchItems(_ batch: Int64, _ specs: [TaskSpec]) async throws -> Int {
        var specs = specs
        for index in specs.indices {
            specs[index].batchID = batch
            if specs[index].batchItem == nil { throw RotaError(.invalidInput, field: "tasks[\(index)].batch_item", "is required in a batch") }
        }
        return try await enqueue(specs).filter(\.inserted).count
    }

    /// Every batch (up to 1,000), newest first.
    public func batches() async throws -> [BatchRecord] { try await batches(limit: 1_000) }

    /// A batch's progress now (see ``batchStatus(_:now:)``).
    public func batchStatus(_ name: String) async throws -> BatchStatus { try await batchStatus(name, now: Date()) }

    /// Retries a batch's `dead` items now (see ``retryBatch(_:now:)``).
    public func retryBatch(_ name: String) async throws -> Int { try await retryBatch(name, now: Date()) }

    /// Cancels a batch's unfinished items now (see ``cancelBatch(_:now:)``).
    public func cancelBatch(_ name: String) async throws -> (cancelled: Int, requested: Int) {
        try await cancelBatch(name, now: Date())
    }

    /// A batch's `dead` items with their last error, for reports.
    public func batchFailures(_ name: String, limit: Int = 1_000) async throws -> [TaskRecord] {
        try await list(TaskFilter(states: [.dead], batch: name, limit: limit))
    }

    /// Submits a batch from a sequence of payloads, restart-safe: item identity is the batch name plus the
    /// item's position, so running the same submission again adds only the missing items.
    ///
    /// ```swift
    /// let batch = try await store.submitBatch(name: "resize-2026-11", taskName: "image.resize",
    ///                                         payloads: files.map { Resize(path: $0) })
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
                                         maxAttempts: Int = 3, onComplete: String? = nil,
                                         chunk: Int = 10_000) async throws -> BatchRecord
    where S.Element: Encodable {
        let batch = try await openBatch(name: name, queue: queue, onComplete: onComplete)
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
                _ = try await addBatchItems(batch.id, specs)
                specs.removeAll(keepingCapacity: true)
            }
        }
        if !specs.isEmpty { _ = try await addBatchItems(batch.id, specs) }
        return try await sealBatch(batch.id)
    }

    /// Waits until every item of the batch finished (it is sealed and complete), polling its status.
    /// - Returns: the final status; its `.dead` count says how many failed (see ``batchFailures(_:limit:)``).
    public func awaitBatch(_ name: String, poll: Duration = .milliseconds(200)) async throws -> BatchStatus {
        while true {
            let status = try await batchStatus(name, now: Date())
            if status.batch.completedAt != nil { return status }
            try await Task.sleep(for: poll)
        }
    }
}

extension BatchSpec {
    /// The parts of an `on_complete` spec (validated by ``BatchSpec``), read once by the core for every store:
    /// the first member of each name wins, as with SQLite's `json_extract`.
    public struct OnCompleteTask: Sendable, Equatable {
        /// The task's name.
        public var name: String
        /// Its queue, when the spec names one (else the batch's).
        public var queue: String?
        /// Its payload, minified, when the spec gives one (else ``defaultPayload(batch:)``).
        public var payload: String?

        /// Reads a spec; nil when it has no string `name`.
        public init?(_ text: String) {
            var text = text
            let parsed: (name: String?, queue: String?, payload: String?)? = text.withUTF8 { bytes in
                guard case .success(let members) = JSONText.members(bytes) else { return nil }
                var name: String?, queue: String?, payload: String?
                var seen: Set<String> = []
                for member in members where seen.insert(member.key).inserted {
                    let value = UnsafeBufferPointer(rebasing: bytes[member.range])
                    switch member.key {
                    case "name" where member.kind == .string: name = JSONText.string(value)
                    case "queue" where member.kind == .string: queue = JSONText.string(value)
                    case "payload" where member.kind != .null: payload = Self.minified(value)
                    default: break
                    }
                }
                return (name, queue, payload)
            }
            guard let parsed, let name = parsed.name else { return nil }
            self.name = name
            queue = parsed.queue
            payload = parsed.payload
        }

        /// The JSON text without whitespace outside strings, every token as written (SQLite's `json()`).
        static func minified(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var inString = false, escaped = false
            for byte in bytes {
                if inString {
                    out.append(byte)
                    if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                    continue
                }
                switch byte {
                case 0x20, 0x09, 0x0A, 0x0D: continue
                case UInt8(ascii: "\""): inString = true; out.append(byte)
                default: out.append(byte)
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        /// `text` as a JSON string, escaped as SQLite's `json_object` escapes it.
        static func jsonString(_ text: String) -> String {
            var out: [UInt8] = [UInt8(ascii: "\"")]
            let hex = Array("0123456789abcdef".utf8)
            for byte in text.utf8 {
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
                case 0x08: out += Array(#"\b"#.utf8)
                case 0x09: out += Array(#"\t"#.utf8)
                case 0x0A: out += Array(#"\n"#.utf8)
                case 0x0C: out += Array(#"\f"#.utf8)
                case 0x0D: out += Array(#"\r"#.utf8)
                case 0..<0x20: out += Array(#"\u00"#.utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
                default: out.append(byte)
                }
            }
            out.append(UInt8(ascii: "\""))
            return String(decoding: out, as: UTF8.self)
        }

        /// The payload of a batch's `on_complete` task when its spec gives none: `{"batch":NAME}`.
        public static func defaultPayload(batch: String) -> String { #"{"batch":\#(jsonString(batch))}"# }
    }

    /// The `on_complete` task, read from the spec (nil without one).
    public var onCompleteTask: OnCompleteTask? { onComplete.flatMap(OnCompleteTask.init) }
}
