import Foundation
import RotaSQLite

extension SQLiteTaskStore {
    /// How many tasks of `queues` (and `names`) are `scheduled` or `running`; see ``TaskStore/countUnfinished(queues:names:)``.
    public func countUnfinished(queues: [String], names: [String]?) async throws -> Int {
        let queueList = try Self.jsonArray(queues)
        return try read { db in
            if let names {
                let nameList = try Self.jsonArray(names)
                return Int(try db.scalarInt("""
                    SELECT count(*) FROM tasks WHERE state IN ('scheduled', 'running')
                    AND queue IN (SELECT value FROM json_each(?1)) AND name IN (SELECT value FROM json_each(?2))
                    """, [.text(queueList), .text(nameList)]) ?? 0)
            }
            return Int(try db.scalarInt("""
                SELECT count(*) FROM tasks WHERE state IN ('scheduled', 'running')
                AND queue IN (SELECT value FROM json_each(?1))
                """, [.text(queueList)]) ?? 0)
        }
    }
}

// MARK: The scheduler's hot path

extension SQLiteTaskStore {
    private static let succeedSQL = """
        UPDATE tasks SET state = 'succeeded', lease_owner = NULL, lease_until = NULL, finished_at = ?4, updated_at = ?4
        WHERE id = ?1 AND attempts = ?2 AND lease_owner = ?3 AND state = 'running'
        """
    private static let attemptSQL = """
        INSERT INTO attempts(task_id, attempt, worker, started_at, finished_at, outcome, error, result)
        VALUES (?1, ?2, ?3, ?4, ?5, 'succeeded', NULL, ?6) ON CONFLICT DO NOTHING
        """

    /// Records attempt ends like ``completeSync(_:)``, with a fast path for successes: their two statements
    /// are prepared once per batch and bound without boxing, in one transaction. Other resolutions (rare)
    /// go through ``completeSync(_:)`` in a transaction of their own, first.
    @discardableResult
    func completeBatch(_ completions: [Completion]) throws -> [Bool] {
        if completions.isEmpty { return [] }
        var applied = [Bool](repeating: false, count: completions.count)
        let others = completions.indices.filter {
            if case .succeeded = completions[$0].resolution { return false }
            return true
        }
        if !others.isEmpty {
            let results = try completeSync(others.map { completions[$0] })
            for (index, ok) in zip(others, results) { applied[index] = ok }
            if others.count == completions.count { return applied }
        }
        try write { db in
            let succeed = try db.cached(Self.succeedSQL)
            let attempt = try db.cached(Self.attemptSQL)
            for (index, completion) in completions.enumerated() {
                guard case .succeeded(let result) = completion.resolution else { continue }
                let finished = completion.finishedAt.unixMillis
                try succeed.bind(completion.taskID, at: 1)
                try succeed.bind(Int64(completion.attempt), at: 2)
                try succeed.bind(completion.worker, at: 3)
                try succeed.bind(finished, at: 4)
                defer { succeed.reset() }
                while try succeed.step() {}
                guard db.changes == 1 else { continue }
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
        }
        return applied
    }
}
