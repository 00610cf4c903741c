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
