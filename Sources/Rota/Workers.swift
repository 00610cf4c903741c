import Foundation

/// Whether a worker is running, as seen from its heartbeats.
public enum WorkerStatus: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// It heartbeated within ``WorkerRecord/livenessWindow`` and has not stopped.
    case live
    /// It has not stopped cleanly but its heartbeat is older than the window: its process died or hangs.
    case dead
    /// It stopped cleanly.
    case stopped

    public var description: String { rawValue }
}

extension WorkerRecord {
    /// How often a worker is expected to heartbeat (the scheduler's default heartbeat interval).
    public static let heartbeatInterval: Duration = .seconds(10)
    /// A worker whose last heartbeat is older than this (three heartbeat intervals) is no longer live.
    public static let livenessWindow: Duration = heartbeatInterval * 3

    /// The worker's status at `now`.
    ///
    /// ```swift
    /// let live = try await store.workers().filter { $0.status(now: Date()) == .live }
    /// ```
    public func status(now: Date) -> WorkerStatus {
        if stoppedAt != nil { return .stopped }
        return now.unixMillis - heartbeatAt.unixMillis <= Self.livenessWindow.milliseconds ? .live : .dead
    }

    /// True when the worker is ``WorkerStatus/live`` at `now`.
    public func isLive(now: Date) -> Bool { status(now: now) == .live }

    /// True when the worker runs tasks named `name` (a `*` in its task names stands for any name).
    public func handles(_ name: String) -> Bool { taskNames.contains(name) || taskNames.contains("*") }
}

/// Scheduled tasks of one queue and name that no live worker can run.
public struct UnhandledTasks: Sendable, Equatable {
    /// Their queue.
    public var queue: String
    /// Their task name.
    public var name: String
    /// How many are scheduled (in the batch asked about, or in all).
    public var scheduled: Int
    /// True when some live worker handles the name but none serves the queue: the queue is what is missing.
    public var nameHandledElsewhere: Bool

    /// Creates a group.
    public init(queue: String, name: String, scheduled: Int, nameHandledElsewhere: Bool) {
        self.queue = queue; self.name = name; self.scheduled = scheduled; self.nameHandledElsewhere = nameHandledElsewhere
    }

    /// Of `groups` (scheduled tasks per queue and name, in the order given), those no `live` worker both
    /// serves and handles: the rule every store's ``TaskStore/unhandledTasks(now:batch:)`` applies.
    public static func among(_ groups: [(queue: String, name: String, scheduled: Int)], live: [WorkerRecord]) -> [UnhandledTasks] {
        groups.compactMap { group in
            if live.contains(where: { $0.queues.contains(group.queue) && $0.handles(group.name) }) { return nil }
            return UnhandledTasks(queue: group.queue, name: group.name, scheduled: group.scheduled,
                                  nameHandledElsewhere: live.contains { $0.handles(group.name) })
        }
    }

    /// `groups` counted in one batch only (`inBatch[queue][name]`: its scheduled items); a group with none
    /// there is left out.
    public static func counted(_ groups: [UnhandledTasks], inBatch: [String: [String: Int]]) -> [UnhandledTasks] {
        groups.compactMap { group in
            guard let count = inBatch[group.queue]?[group.name] else { return nil }
            var group = group
            group.scheduled = count
            return group
        }
    }
}
