import Foundation
import Rota
import RotaSQLite

extension SQLiteTaskStore {
    /// How many tasks of `queues` (and `names`) are `scheduled` or `running`; see ``TaskStore/countUnfinished(queues:names:)``.
    public func countUnfinished(queues: [String], names: [String]?) async throws -> Int {
        try await io { [self] in
            let queueList = try Self.jsonArray(queues)
            // From task_counts (a few rows), not the tasks table: --until-empty asks this on every idle poll.
            return try read { db in
                if let names {
                    let nameList = try Self.jsonArray(names)
                    return Int(try db.scalarInt("""
                        SELECT coalesce(sum(n), 0) FROM task_counts WHERE state IN ('scheduled', 'running')
                        AND queue IN (SELECT value FROM json_each(?1)) AND name IN (SELECT value FROM json_each(?2))
                        """, [.text(queueList), .text(nameList)]) ?? 0)
                }
                return Int(try db.scalarInt("""
                    SELECT coalesce(sum(n), 0) FROM task_counts WHERE state IN ('scheduled', 'running')
                    AND queue IN (SELECT value FROM json_each(?1))
                    """, [.text(queueList)]) ?? 0)
            }
        }
    }
}

// MARK: The scheduler's hot path

extension SQLiteTaskStore {
    static let attemptSQL = """
        INSERT INTO attempts(task_id, attempt, worker, started_at, finished_at, outcome, error, result)
        VALUES (?1, ?2, ?3, ?4, ?5, 'succeeded', NULL, ?6) ON CONFLICT DO NOTHING
        """

    /// The scheduler's turn in one transaction: records `completions`, then claims for `requests`. One
    /// commit instead of two, and the pages both touch (the tasks' rows, tasks_due, task_counts) go to the
    /// WAL once. Blocks the calling thread (the scheduler's loop thread calls it directly).
    public func completeAndClaimBlocking(_ completions: [Completion], _ requests: [ClaimRequest], worker: String,
                                         leaseUntil: Date, now: Date) throws -> ClaimTurn {
        let requests = requests.filter { $0.limit > 0 && $0.names?.isEmpty != true }
        if completions.isEmpty && requests.isEmpty { return ClaimTurn(applied: [], claimed: [], filled: false) }
        var applied = [Bool](repeating: false, count: completions.count)
        var filled = false
        let claimed = try write { db in
            // In order: of two ends of the same attempt, the first applies.
            var moved = TransitionCounts()
            for (index, completion) in completions.enumerated() {
                if case .succeeded(let result) = completion.resolution {
                    applied[index] = try recordSuccess(db, completion, result: result, counting: &moved)
                } else {
                    applied[index] = try completeOther(db, completion)
                }
            }
            try moved.record(db, from: .running, to: .succeeded)
            return requests.isEmpty ? [] : try claim(db, requests, worker: worker, leaseUntil: leaseUntil, now: now, filled: &filled)
        }
        return ClaimTurn(applied: applied, claimed: claimed, filled: filled)
    }

    public func completeAndClaim(_ completions: [Completion], _ requests: [ClaimRequest], worker: String,
                                 leaseUntil: Date, now: Date) async throws -> ClaimTurn {
        try await io { [self] in
            try completeAndClaimBlocking(completions, requests, worker: worker, leaseUntil: leaseUntil, now: now)
        }
    }

    /// Records one success inside the caller's transaction, only while its attempt still holds the lease:
    /// the one path every success takes. Adds it to `moved` (the caller records the counts once).
    /// - Returns: whether it applied.
    private func recordSuccess(_ db: Connection, _ completion: Completion, result: String?,
                               counting moved: inout TransitionCounts) throws -> Bool {
        let finished = completion.finishedAt.unixMillis
        /// The success statements share their parameters: ?1 task, ?2 attempt, ?3 worker, ?4 finished.
        func boundSuccess(_ sql: String) throws -> Statement {
            let statement = try db.cached(sql)
            try statement.bind(completion.taskID, at: 1)
            try statement.bind(Int64(completion.attempt), at: 2)
            try statement.bind(completion.worker, at: 3)
            try statement.bind(finished, at: 4)
            return statement
        }
        // With the queue and name known, no RETURNING (it buffers rows in a temporary table per run).
        let succeed = try boundSuccess(completion.queueAndName == nil ? Self.succeededOneReturningSQL : Self.succeededOneSQL)
        defer { succeed.reset() }
        if let known = completion.queueAndName {
            while try succeed.step() {}
            if db.changes != 1 {
                // A batch item (its trigger must run), or the lease was lost.
                let any = try boundSuccess(Self.succeededOneAnySQL)
                defer { any.reset() }
                while try any.step() {}
                guard db.changes == 1 else { return false }
            }
            moved.add(queue: known.queue, name: known.name)
        } else {
            guard try succeed.step() else { return false } // RETURNING: a row when the lease still held
            moved.add(queue: succeed.string(0), name: succeed.string(1))
        }
        let attempt = try db.cached(Self.attemptSQL)
        try attempt.bind(completion.taskID, at: 1)
        try attempt.bind(Int64(completion.attempt), at: 2)
        try attempt.bind(completion.worker, at: 3)
        try attempt.bind(completion.startedAt.unixMillis, at: 4)
        try attempt.bind(finished, at: 5)
        try attempt.bind(result, at: 6)
        defer { attempt.reset() }
        while try attempt.step() {}
        return true
    }
}

extension SQLiteTaskStore: CommitWatching {
    /// `PRAGMA data_version`: changes when another connection commits to the file (this one's own commits
    /// leave it alone). Cheap: it reads the WAL's shared memory, not the tables.
    public func externalCommitVersion() throws -> Int64 {
        try read { db in try db.scalarInt("PRAGMA data_version") ?? 0 }
    }

    /// Watches the database's write-ahead log with inotify (``FileChangeWatcher``): every commit, by any
    /// connection, writes to it. nil where inotify is missing (or `ROTA_FILE_WATCH=off`): poll instead.
    public func watchCommits(_ onChange: @escaping @Sendable () -> Void) -> (any CommitWatch)? {
        guard configuration.access != .readOnly,
              let watcher = try? FileChangeWatcher(path: path + "-wal", onChange: onChange) else { return nil }
        return WALWatch(watcher: watcher)
    }

    private struct WALWatch: CommitWatch {
        let watcher: FileChangeWatcher
        func stop() { watcher.stop() }
    }
}
