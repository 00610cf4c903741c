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
