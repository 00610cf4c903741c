import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore

/// The store operations the scheduler added (SQLiteTaskStore+Scheduler.swift).
@Suite("Scheduler store operations")
struct SchedulerStoreTests {
    @Test func completeBatchRecordsMixedResolutionsAndIgnoresLeasesItNoLongerHolds() async throws {
        let db = try TempDatabase()
        let store = try db.store()
        let ids = try await store.enqueue((0..<4).map { _ in TaskSpec(name: "job") }).map(\.id)
        let claimed = try await store.claim([ClaimRequest(queue: "default", names: ["job"], limit: 4)], worker: "w",
                                            leaseUntil: Date().addingTimeInterval(60), now: Date())
        #expect(claimed.count == 4)
        let now = Date()
        func completion(_ index: Int, worker: String = "w", _ resolution: Completion.Resolution) -> Completion {
            Completion(taskID: claimed[index].id, attempt: claimed[index].attempt, worker: worker,
                       startedAt: claimed[index].startedAt, finishedAt: now, resolution: resolution)
        }
        let applied = try store.completeSync([
            completion(0, .succeeded(result: "42")),
            completion(1, .dead(outcome: .failed, error: "no")),
            completion(2, worker: "someone-else", .succeeded(result: nil)),
            completion(3, .retry(outcome: .timedOut, error: "slow", runAt: now.addingTimeInterval(60))),
        ])
        #expect(applied == [true, true, false, true])
        let byID = Dictionary(uniqueKeysWithValues: claimed.enumerated().map { ($1.id, $0) })
        for id in ids {
            let task = try #require(try await store.task(id))
            switch byID[id] {
            case 0: #expect(task.state == .succeeded && task.result == "42")
            case 1: #expect(task.state == .dead && task.lastError == "no")
            case 2: #expect(task.state == .running)
            default: #expect(task.state == .scheduled && task.lastError == "slow")
            }
        }
    }

    @Test(arguments: StoreKind.all) func countUnfinishedCountsScheduledAndRunningOfTheGivenQueuesAndNames(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        _ = try await store.enqueue([
            TaskSpec(name: "a"), TaskSpec(name: "a", runAt: Date().addingTimeInterval(3600)), TaskSpec(name: "b"),
            TaskSpec(name: "a", queue: "other"),
        ])
        _ = try await store.claim([ClaimRequest(queue: "default", names: ["b"], limit: 1)], worker: "w",
                                  leaseUntil: Date().addingTimeInterval(60), now: Date())
        #expect(try await store.countUnfinished(queues: ["default"], names: ["a"]) == 2)
        #expect(try await store.countUnfinished(queues: ["default"], names: nil) == 3)
        #expect(try await store.countUnfinished(queues: ["default", "other"], names: ["a", "b"]) == 4)
    }

    @Test(arguments: StoreKind.all) func nextRunAtConsidersOnlyTheGivenNames(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        let later = Date().addingTimeInterval(600)
        _ = try await store.enqueue([TaskSpec(name: "other"), TaskSpec(name: "mine", runAt: later)])
        let next = try #require(try await store.nextRunAt(queues: ["default"], names: ["mine"]))
        #expect(abs(next.timeIntervalSince(later)) < 0.01)
        #expect(try await store.nextRunAt(queues: ["default"], names: ["nobody"]) == nil)
    }
}
