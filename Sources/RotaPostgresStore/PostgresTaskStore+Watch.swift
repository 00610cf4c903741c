import Foundation
import Logging
import PostgresNIO
import Rota
import Synchronization

// MARK: Wake-ups: NOTIFY on commit, LISTEN on one connection

extension PostgresTaskStore {
    /// The channel every Rota store notifies on; the payload is `SCHEMA/QUEUE`, so schedulers of another
    /// schema in the same database ignore it.
    static let channel = "rota_tasks_due"

    /// True when a notification's payload (`SCHEMA/QUEUE`) is about `schema`.
    static func isOurs(payload: String, schema: String) -> Bool {
        payload.utf8.count > schema.utf8.count && payload.hasPrefix(schema + "/")
    }

    /// Notifies listeners, at commit of the caller's transaction, that tasks of `queues` may be due (one
    /// notification per queue per transaction; PostgreSQL folds duplicates).
    static func notifyDue(_ queues: some Collection<String>, _ connection: PostgresConnection, _ logger: Logger) async throws {
        if queues.isEmpty { return }
        let list = Array(Set(queues)).sorted()
        try await connection.run("""
            SELECT pg_notify(\(channel), current_schema() || '/' || q) FROM unnest(\(list)::text[]) AS q
            """, logger)
    }
}

extension PostgresTaskStore {
    /// Sends, after the commit of an enqueue that `notifyGate` held back, one NOTIFY per queue at the end of
    /// its interval (unless one is already on its way: it leaves after this commit too).
    func followNotify(_ queues: [String]) {
        for (queue, at) in notifyGate.follow(queues) {
            Task.detached { [self] in
                try? await Task.sleep(until: at, clock: .continuous)
                notifyGate.sent(queue)
                // Best effort: a scheduler that misses it polls (and looks again after a LISTEN reconnect).
                try? await read { [logger] connection in try await Self.notifyDue([queue], connection, logger) }
            }
        }
    }
}

/// At most one NOTIFY per queue per interval from this process, and never none after a commit: a
/// transaction inside a queue's interval sends none itself, and a trailing one follows at the interval's end
/// (PostgreSQL serializes committing transactions that NOTIFY, so a burst of enqueues sends a few, not one
/// each). Enqueues from separate processes (`rota enqueue`) each notify at once.
final class NotifyGate: Sendable {
    let interval: Duration
    private struct Entry { var last: ContinuousClock.Instant; var trailing: Bool }
    private let entries = Mutex<[String: Entry]>([:])

    init(interval: Duration) { self.interval = interval }

    /// Of the queues a transaction made tasks due in, those it notifies at its commit (`now`) and those it
    /// leaves to a trailing NOTIFY (`later`: pass them to ``follow(_:)`` once it committed).
    func split(_ queues: Set<String>) -> (now: [String], later: [String]) {
        if interval == .zero || queues.isEmpty { return (Array(queues), []) }
        let now = ContinuousClock.now
        return entries.withLock { entries in
            var result: (now: [String], later: [String]) = ([], [])
            for queue in queues.sorted() {
                if let entry = entries[queue], entry.trailing || now - entry.last < interval {
                    result.later.append(queue)
                } else {
                    entries[queue] = Entry(last: now, trailing: false)
                    result.now.append(queue)
                }
            }
            return result
        }
    }

    /// After a commit: the queues (of `queues`) that need a trailing NOTIFY now, and when to send it. A queue
    /// whose trailing NOTIFY is already scheduled is not among them (that one is sent after this commit).
    func follow(_ queues: [String]) -> [(String, ContinuousClock.Instant)] {
        if queues.isEmpty { return [] }
        return entries.withLock { entries in
            var scheduled: [(String, ContinuousClock.Instant)] = []
            for queue in queues {
                let last = entries[queue]?.last ?? ContinuousClock.now
                if entries[queue]?.trailing == true { continue }
                entries[queue] = Entry(last: last, trailing: true)
                scheduled.append((queue, last + interval))
            }
            return scheduled
        }
    }

    /// A trailing NOTIFY for `queue` leaves now (called before it is sent, so a commit after this schedules
    /// another rather than count on it).
    func sent(_ queue: String) {
        entries.withLock { $0[queue] = Entry(last: ContinuousClock.now, trailing: false) }
    }
}

extension PostgresTaskStore: CommitWatching {
    /// How many notifications of this schema the store's listener received (and reconnections it made,
    /// after which something may have been missed): changes when another process enqueued.
    public func externalCommitVersion() throws -> Int64 {
        Int64(notifications.value.load(ordering: .relaxed))
    }

    /// Listens (`LISTEN`) on one connection of the pool for other processes' enqueues, reconnecting after a
    /// lost connection (and reporting a change then, as one may have been missed). nil when the
    /// configuration turned LISTEN off (PgBouncer's transaction mode): the scheduler polls.
    public func watchCommits(_ onChange: @escaping @Sendable () -> Void) -> (any CommitWatch)? {
        guard configuration.listen, configuration.access != .readOnly else { return nil }
        let watch = ListenWatch()
        let task = Task.detached { [client, logger, notifications] in
            /// Reports a change, unless the watch was stopped.
            func changed() {
                notifications.value.add(1, ordering: .relaxed)
                if !watch.stopped.load(ordering: .acquiring) { onChange() }
            }
            var backoff = Duration.milliseconds(50)
            var first = true
            while !Task.isCancelled {
                do {
                    try await client.withConnection { connection in
                        let schema = try await connection.rows("SELECT current_schema()", [], logger) { try $0.optionalString(0) }.first ?? nil
                        try await connection.listen(on: Self.channel) { sequence in
                            if !first {
                                // Reconnected: what was notified meanwhile is lost; look once.
                                changed()
                            }
                            first = false
                            backoff = .milliseconds(50)
                            for try await notification in sequence where Self.isOurs(payload: notification.payload, schema: schema ?? "") {
                                changed()
                            }
                        }
                    }
                } catch {
                    logger.debug("LISTEN connection lost; reconnecting", metadata: ["error": "\(error)"])
                }
                if Task.isCancelled { break }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
        watch.task.withLock { $0 = task }
        return watch
    }

    /// A running LISTEN loop.
    final class ListenWatch: CommitWatch, Sendable {
        let task = Mutex<Task<Void, Never>?>(nil)
        let stopped = Atomic<Bool>(false)
        func stop() {
            stopped.store(true, ordering: .releasing)
            task.withLock { $0?.cancel() }
        }
    }
}

/// A counter shared with the LISTEN loop.
final class NotificationCounter: Sendable {
    let value = Atomic<Int>(0)
}
