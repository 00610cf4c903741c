import Foundation
import RotaSQLite

extension SQLiteTaskStore {
    /// How many tasks of `queues` (and `names`) are `scheduled` or `running`; see ``TaskStore/countUnfinished(queues:names:)``.
    public func countUnfinished(queues: [String], names: [String]?) async throws -> Int {
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

// MARK: The scheduler's hot path

extension SQLiteTaskStore {
    static let attemptSQL = """
        INSERT INTO attempts(task_id, attempt, worker, started_at, finished_at, outcome, error, result)
        VALUES (?1, ?2, ?3, ?4, ?5, 'succeeded', NULL, ?6) ON CONFLICT DO NOTHING
        """

    /// `PRAGMA data_version`: changes when another connection commits to the file (this one's own commits
    /// leave it alone). Cheap: it reads the WAL's shared memory, not the tables.
    func dataVersion() throws -> Int64 {
        try read { db in try db.scalarInt("PRAGMA data_version") ?? 0 }
    }

    /// Records attempt ends like ``completeSync(_:)``, in one transaction, with a fast path for successes:
    /// their two statements are prepared once and bound without boxing. Other resolutions (rare) go
    /// through ``complete(_:_:)``.
    @discardableResult
    func completeBatch(_ completions: [Completion]) throws -> [Bool] {
        try completeAndClaim(completions, [], worker: "", leaseUntil: Date(), now: Date()).applied
    }

    /// The scheduler's turn in one transaction: records `completions` (as ``completeBatch(_:)``) and claims
    /// for `requests` (as ``claimSync(_:worker:leaseUntil:now:)``). One commit instead of two, and the pages
    /// both touch (the tasks' rows, tasks_due, task_counts) go to the WAL once.
    func completeAndClaim(_ completions: [Completion], _ requests: [ClaimRequest], worker: String, leaseUntil: Date,
                          now: Date) throws -> (applied: [Bool], claimed: [ClaimedTask], filled: Bool) {
        let requests = requests.filter { $0.limit > 0 && $0.names?.isEmpty != true }
        var applied = [Bool](repeating: false, count: completions.count)
        let others = completions.indices.filter {
            if case .succeeded = completions[$0].resolution { return false }
            return true
        }
        if completions.isEmpty && requests.isEmpty { return ([], [], false) }
        var filled = false
        let claimed = try write { db in
            if !others.isEmpty {
                let results = try complete(db, others.map { completions[$0] })
                for (index, ok) in zip(others, results) { applied[index] = ok }
            }
            if others.count < completions.count { try recordSuccesses(db, completions, applied: &applied) }
            return requests.isEmpty ? [] : try claim(db, requests, worker: worker, leaseUntil: leaseUntil, now: now, filled: &filled)
        }
        return (applied, claimed, filled)
    }

    /// Records the successes among `completions` inside the caller's transaction, setting `applied` for those
    /// whose attempt still held the lease.
    private func recordSuccesses(_ db: Connection, _ completions: [Completion], applied: inout [Bool]) throws {
        let attempt = try db.cached(Self.attemptSQL)
        var moved = TransitionCounts()
        for (index, completion) in completions.enumerated() {
            guard case .succeeded(let result) = completion.resolution else { continue }
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
                    guard db.changes == 1 else { continue }
                }
                moved.add(queue: known.queue, name: known.name)
            } else {
                guard try succeed.step() else { continue } // RETURNING: a row when the lease still held
                moved.add(queue: succeed.string(0), name: succeed.string(1))
            }
            try attempt.bind(completion.taskID, at: 1)
            try attempt.bind(Int64(completion.attempt), at: 2)
            try attempt.bind(completion.worker, at: 3)
            try attempt.bind(completion.startedAt.unixMillis, at: 4)
            try attempt.bind(finished, at: 5)
            try attempt.bind(result, at: 6)
            defer { attempt.reset() }
            while try attempt.step() {}
            applied[index] = true
        }
        try moved.record(db, from: .running, to: .succeeded)
    }
}
