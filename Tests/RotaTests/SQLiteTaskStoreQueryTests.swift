import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore
import RotaSQLite

@Suite("SQLiteTaskStore: queries")
struct SQLiteTaskStoreQueryTests {
    @Test func taskOfAMissingIDIsNil() async throws {
        let f = try StoreFixture()
        #expect(try await f.store.task(1) == nil)
        #expect(try await f.store.attempts(of: 1) == [])
    }

    @Test func attemptsAreInAttemptOrder() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", maxAttempts: 3)).id
        for n in 1...3 {
            let claimed = try #require(try await f.store.claimAll(now: instant(Double(n))).first)
            #expect(claimed.attempt == n)
            let resolution: Completion.Resolution = n < 3
                ? .retry(outcome: .failed, error: "e\(n)", runAt: instant(Double(n)))
                : .succeeded(result: "\(n)")
            _ = try await f.store.complete([Completion(claimed, worker: "w1", finishedAt: instant(Double(n) + 0.5), resolution)])
        }
        let attempts = try await f.store.attempts(of: id)
        #expect(attempts.map(\.attempt) == [1, 2, 3])
        #expect(attempts.map(\.outcome) == [.failed, .failed, .succeeded])
        #expect(attempts.map(\.error) == ["e1", "e2", nil])
        #expect(try await f.store.record(id).result == "3")
        #expect(try await f.store.record(id).lastError == "e2")
    }

    @Test func listIsNewestFirstAndLimited() async throws {
        let f = try StoreFixture()
        let ids = try await f.store.enqueue((0..<10).map { TaskSpec(name: "t\($0)") }).map(\.id)
        #expect(try await f.store.list(TaskFilter()).map(\.id) == ids.reversed())
        #expect(try await f.store.list(TaskFilter(limit: 3)).map(\.id) == Array(ids.reversed().prefix(3)))
        #expect(try await f.store.list(TaskFilter(limit: 0)).isEmpty)
        // Paging newest-first.
        #expect(try await f.store.list(TaskFilter(limit: 3, beforeID: ids[7])).map(\.id) == [ids[6], ids[5], ids[4]])
        #expect(try await f.store.list(TaskFilter(beforeID: ids[0])).isEmpty)
    }

    @Test func listFiltersByState() async throws {
        let f = try StoreFixture()
        let s = try await EveryState.make(f.store)
        #expect(try await f.store.list(TaskFilter(states: [.running])).map(\.id) == [s.running])
        #expect(try await f.store.list(TaskFilter(states: [.dead, .scheduled])).map(\.id) == [s.dead, s.scheduled])
        #expect(try await f.store.list(TaskFilter(states: [.succeeded])).first?.result == "true")
        #expect(try await f.store.list(TaskFilter(states: TaskState.allCases)).count == 5)
    }

    @Test func listFiltersByQueueNameScheduleAndCreation() async throws {
        let f = try StoreFixture()
        let ids = try await f.store.enqueue([
            TaskSpec(name: "email", queue: "mail"),
            TaskSpec(name: "report", queue: "reports", schedule: "nightly", fireAt: instant(0)),
            TaskSpec(name: "email", queue: "reports"),
        ]).map(\.id)
        #expect(try await f.store.list(TaskFilter(queue: "reports")).map(\.id) == [ids[2], ids[1]])
        #expect(try await f.store.list(TaskFilter(name: "email")).map(\.id) == [ids[2], ids[0]])
        #expect(try await f.store.list(TaskFilter(queue: "reports", name: "email")).map(\.id) == [ids[2]])
        #expect(try await f.store.list(TaskFilter(schedule: "nightly")).map(\.id) == [ids[1]])
        #expect(try await f.store.list(TaskFilter(name: "nope")).isEmpty)

        // created_at: backdate the first task through a second connection.
        let db = try f.connection()
        try db.run("UPDATE tasks SET created_at = created_at - 3600000 WHERE id = ?", [.integer(ids[0])])
        #expect(try await f.store.list(TaskFilter(createdSince: instant(-60))).map(\.id) == [ids[2], ids[1]])
        #expect(try await f.store.list(TaskFilter(createdSince: instant(-7200))).count == 3)
    }

    @Test func listFiltersByBatchName() async throws {
        let f = try StoreFixture()
        let db = try f.connection()
        try db.run("INSERT INTO batches(id, name, created_at) VALUES (1, 'import-a', 0), (2, 'import-b', 0)")
        let ids = try await f.store.enqueue([
            TaskSpec(name: "row", batchID: 1, batchItem: "1"), TaskSpec(name: "row", batchID: 2, batchItem: "1"),
            TaskSpec(name: "row", batchID: 1, batchItem: "2"), TaskSpec(name: "row"),
        ]).map(\.id)
        let inA = try await f.store.list(TaskFilter(batch: "import-a"))
        #expect(inA.map(\.id) == [ids[2], ids[0]])
        #expect(inA.allSatisfy { $0.batch == "import-a" })
        #expect(try await f.store.list(TaskFilter(batch: "missing")).isEmpty)
    }

    @Test func statsCountStatesQueuesAndThroughput() async throws {
        let f = try StoreFixture()
        let now = instant(0)
        let empty = try await f.store.stats(now: now)
        #expect(empty.states == Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, 0) }))
        #expect(empty.queues.isEmpty)
        #expect(empty.oldestDueAt == nil)
        #expect(empty.finishedLastMinute == 0 && empty.finishedLastHour == 0)
        #expect(empty.scheduledByName.isEmpty)

        // Finished 30 s ago: succeeded, dead, cancelled (cancelled is not throughput).
        let recent = try await EveryState.make(f.store, queue: "a", finishedAt: instant(-30, from: now))
        // Finished 30 min ago.
        _ = try await EveryState.make(f.store, queue: "b", finishedAt: instant(-1800, from: now))
        // Finished 2 h ago.
        _ = try await EveryState.make(f.store, queue: "b", finishedAt: instant(-7200, from: now))
        let future = try await f.store.enqueue(TaskSpec(name: "later", queue: "a", runAt: instant(600, from: now))).id

        let stats = try await f.store.stats(now: now)
        #expect(stats.states == [.scheduled: 4, .running: 3, .succeeded: 3, .dead: 3, .cancelled: 3])
        #expect(stats.queues["a"] == [.scheduled: 2, .running: 1, .succeeded: 1, .dead: 1, .cancelled: 1])
        #expect(stats.queues["b"] == [.scheduled: 2, .running: 2, .succeeded: 2, .dead: 2, .cancelled: 2])
        #expect(stats.queues.count == 2)
        // The scheduled tasks from EveryState were due 60 s before they were made; the future one is not due.
        let oldest = try #require(stats.oldestDueAt)
        let scheduledRunAts = try await [recent.scheduled].asyncMap { try await f.store.record($0).runAt }
        #expect(oldest <= scheduledRunAts[0])
        #expect(oldest < now)
        #expect(stats.finishedLastMinute == 2)
        #expect(stats.finishedLastHour == 4)
        #expect(stats.scheduledByName == ["s0": 3, "later": 1])
        #expect(try await f.store.record(future).state == .scheduled)
    }

    @Test func statsOldestDueIgnoresFutureTasks() async throws {
        let f = try StoreFixture()
        let now = instant(0)
        _ = try await f.store.enqueue(TaskSpec(name: "later", runAt: instant(60, from: now)))
        #expect(try await f.store.stats(now: now).oldestDueAt == nil)
        let due = instant(-5, from: now)
        _ = try await f.store.enqueue(TaskSpec(name: "due", runAt: due))
        _ = try await f.store.enqueue(TaskSpec(name: "due-later", runAt: instant(-1, from: now)))
        #expect(try await f.store.stats(now: now).oldestDueAt == due)
    }
}
