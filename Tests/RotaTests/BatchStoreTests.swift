import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore

/// Batches in the store: restart-safe submission, progress kept by triggers, completion fired once.
@Suite final class BatchStoreTests {
    private let directory: String
    private let store: SQLiteTaskStore

    init() throws {
        directory = NSTemporaryDirectory() + "rota-batch-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try SQLiteTaskStore(path: directory + "/rota.db", configuration: .init(durability: .normal))
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    struct Item: Codable, Equatable { var n: Int }

    /// Claims and finishes every due task of the batch with `resolution`, as a worker would.
    private func work(limit: Int = 1_000, _ resolution: (ClaimedTask) -> Completion.Resolution) async throws -> Int {
        let now = Date()
        let claimed = try store.claimSync([ClaimRequest(queue: "default", names: nil, limit: limit)], worker: "w",
                                          leaseUntil: now.addingTimeInterval(60), now: now)
        try store.completeSync(claimed.map {
            Completion(taskID: $0.id, attempt: $0.attempt, worker: "w", startedAt: now, finishedAt: Date(), resolution: resolution($0))
        })
        return claimed.count
    }

    @Test func resubmittingTheSameBatchAddsOnlyMissingItems() async throws {
        let onComplete = #"{"name": "report", "payload": {"kind": "done"}}"#
        // A first submission killed after 40 items: opened, items added, never sealed.
        let first = try await store.openBatch(name: "b", onComplete: onComplete)
        _ = try await store.addBatchItems(first.id, (1...40).map { TaskSpec(name: "item", payload: #"{"n":\#($0)}"#, batchItem: String($0)) })
        await #expect(try store.batch(named: "b")?.sealed == false)
        // Run again in full.
        let batch = try await store.submitBatch(name: "b", taskName: "item", payloads: (1...100).map { Item(n: $0) }, onComplete: onComplete, chunk: 30)
        #expect(batch.total == 100)
        #expect(batch.sealed)
        let items = try await store.list(TaskFilter(batch: "b", limit: 1_000))
        #expect(items.count == 100)
        #expect(Set(items.compactMap(\.batchItem)).count == 100)
        // And once more after it was sealed: nothing new.
        await #expect(try store.submitBatch(name: "b", taskName: "item", payloads: (1...100).map { Item(n: $0) }).total == 100)
    }

    @Test func completionEnqueuesTheCallbackExactlyOnce() async throws {
        _ = try await store.submitBatch(name: "nightly", taskName: "item", payloads: (1...10).map { Item(n: $0) },
                                  onComplete: #"{"name": "report", "queue": "reports"}"#)
        await #expect(try work(limit: 5) { _ in .succeeded(result: nil) } == 5)
        await #expect(try store.batch(named: "nightly")?.completedAt == nil)
        await #expect(try work { _ in .dead(outcome: .failed, error: "boom") } == 5)
        let done = try await #require(try store.batch(named: "nightly"))
        #expect(done.finished == 10 && done.completedAt != nil)
        var callbacks = try await store.list(TaskFilter(name: "report", limit: 10))
        #expect(callbacks.count == 1)
        #expect(callbacks.first?.queue == "reports")
        #expect(callbacks.first?.payload.contains("nightly") == true)
        // Retrying its dead items makes it running again (migration 8); finishing them completes it anew,
        // without a second callback.
        await #expect(try store.retryBatch("nightly") == 5)
        let reopened = try await #require(try store.batch(named: "nightly"))
        #expect(reopened.finished == 5 && reopened.completedAt == nil && reopened.phase == "running")
        await #expect(try work(limit: 100) { $0.name == "item" ? .succeeded(result: nil) : .retry(outcome: .failed, error: "later", runAt: Date(timeIntervalSinceNow: 3600)) } >= 5)
        let again = try await #require(try store.batch(named: "nightly"))
        #expect(again.finished == 10 && again.completedAt != nil && again.phase == "complete")
        callbacks = try await store.list(TaskFilter(name: "report", limit: 10))
        #expect(callbacks.count == 1)
    }

    /// on_complete runs once even when its task is purged and the batch completes again after new items
    /// reopened it (migration 8: the batch remembers the callback fired).
    @Test func aPurgedCallbackIsNotEnqueuedAgainWhenTheBatchCompletesAgain() async throws {
        let batch = try await store.submitBatch(name: "p", taskName: "item", payloads: [Item(n: 1)], onComplete: #"{"name": "report"}"#)
        await #expect(try work { _ in .succeeded(result: nil) } == 1)  // the item
        await #expect(try work { _ in .succeeded(result: nil) } == 1)  // the callback
        await #expect(try store.batch(named: "p")?.completedAt != nil)
        #expect(try await store.purge(olderThan: Date().addingTimeInterval(60), states: [.succeeded]) == 2)
        #expect(try await store.list(TaskFilter(name: "report", limit: 10)).isEmpty)
        // New items reopen the completed batch; finishing them completes it without a second callback.
        _ = try await store.openBatch(name: "p")
        await #expect(try store.addBatchItems(batch.id, [TaskSpec(name: "item", batchID: batch.id, batchItem: "extra")]) == 1)
        let reopened = try await #require(try store.batch(named: "p"))
        #expect(reopened.completedAt == nil)
        _ = try await store.sealBatch(batch.id)
        await #expect(try store.batch(named: "p")?.phase == "running")
        await #expect(try work { _ in .succeeded(result: nil) } == 1)
        await #expect(try store.batch(named: "p")?.completedAt != nil)
        #expect(try await store.list(TaskFilter(name: "report", limit: 10)).isEmpty)
    }

    @Test func aBatchWhoseItemsAllFinishedBeforeSealingCompletesAtSeal() async throws {
        let batch = try await store.openBatch(name: "quick", onComplete: #"{"name": "report"}"#)
        _ = try await store.addBatchItems(batch.id, [TaskSpec(name: "item", batchItem: "1")])
        _ = try await work { _ in .succeeded(result: nil) }
        await #expect(try store.batch(named: "quick")?.completedAt == nil)  // not sealed yet: more may come
        await #expect(try store.sealBatch(batch.id).completedAt != nil)
    }

    @Test func statusCountsEveryStateAndEstimates() async throws {
        _ = try await store.submitBatch(name: "s", taskName: "item", payloads: (1...6).map { Item(n: $0) })
        let beforeWork = Date()
        _ = try await work(limit: 2) { _ in .succeeded(result: nil) }
        // "The last minute" as of when the work began: both finished after it, however long it took.
        let status = try await store.batchStatus("s", now: beforeWork)
        #expect(status.states[.succeeded] == 2 && status.states[.scheduled] == 4)
        #expect(status.states.count == TaskState.allCases.count)
        #expect(status.remaining == 4)
        #expect(status.finishedLastMinute == 2)
        #expect(status.rate != nil && status.eta != nil)
        await #expect(throws: RotaError.self) { try await self.store.batchStatus("missing") }
    }

    @Test func cancelStopsScheduledItemsAndAsksRunningOnesToStop() async throws {
        _ = try await store.submitBatch(name: "c", taskName: "item", payloads: (1...5).map { Item(n: $0) })
        let now = Date()
        _ = try store.claimSync([ClaimRequest(queue: "default", names: nil, limit: 2)], worker: "w", leaseUntil: now.addingTimeInterval(60), now: now)
        let result = try await store.cancelBatch("c")
        #expect(result.cancelled == 3 && result.requested == 2)
        #expect(try await store.heartbeat(worker: "w", now: now, leaseUntil: now.addingTimeInterval(60)).count == 2)
    }

    @Test func badOnCompleteSpecsAreRejectedAndNothingIsWritten() async throws {
        for bad in ["[]", "{}", #"{"name": ""}"#, #"{"name": "x", "payload": "text"}"#, #"{"name": "x", "queue": 3}"#, "not json"] {
            await #expect(throws: RotaError.self) { try await self.store.openBatch(name: "bad", onComplete: bad) }
        }
        #expect(try await store.batches().isEmpty)
    }

    @Test func purgingFinishedItemsKeepsTheCountsTrue() async throws {
        _ = try await store.submitBatch(name: "p", taskName: "item", payloads: (1...4).map { Item(n: $0) })
        _ = try await work { _ in .succeeded(result: nil) }
        #expect(try await store.purge(olderThan: Date(timeIntervalSinceNow: 60), states: []) == 4)
        let batch = try await #require(try store.batch(named: "p"))
        #expect(batch.total == 0 && batch.finished == 0)
    }

    /// Scheduled tasks that no live worker can run, per queue and name: a name nobody handles, and a name
    /// handled only by workers that serve other queues. Stopped and silent workers do not count.
    @Test func unhandledTasksAreThoseNoLiveWorkerBothServesAndHandles() async throws {
        let now = Date()
        let batch = try await store.openBatch(name: "b")
        _ = try await store.addBatchItems(batch.id, [TaskSpec(name: "resize", batchID: batch.id, batchItem: "1"),
                                               TaskSpec(name: "orphan", batchID: batch.id, batchItem: "2")])
        _ = try await store.sealBatch(batch.id)
        _ = try store.enqueueSync([TaskSpec(name: "resize"), TaskSpec(name: "resize", queue: "reports"),
                                   TaskSpec(name: "resize", queue: "reports"), TaskSpec(name: "orphan", queue: "reports"),
                                   TaskSpec(name: "mail")])
        func worker(_ id: String, queues: [String], names: [String], heartbeat: Date = now) -> WorkerRecord {
            WorkerRecord(id: id, host: "h", pid: 1, queues: queues, taskNames: names, concurrency: 1,
                         startedAt: heartbeat, heartbeatAt: heartbeat)
        }
        // No worker at all: every group.
        await #expect(try store.unhandledTasks(now: now).map { "\($0.queue)/\($0.name)=\($0.scheduled)" }
                == ["default/mail=1", "default/orphan=1", "default/resize=2", "reports/orphan=1", "reports/resize=2"])
        await #expect(try store.unhandledTasks(now: now).allSatisfy { !$0.nameHandledElsewhere })
        // Live: resize and mail in default. Stopped: one that served everything. Silent for an hour: another.
        try await store.registerWorker(worker("live", queues: ["default"], names: ["resize", "mail"]))
        try await store.registerWorker(worker("stopped", queues: ["default", "reports"], names: ["*"]))
        try await store.stopWorker("stopped", at: now)
        try await store.registerWorker(worker("silent", queues: ["reports"], names: ["*"], heartbeat: now.addingTimeInterval(-3600)))
        let unhandled = try await store.unhandledTasks(now: now)
        #expect(unhandled == [
            UnhandledTasks(queue: "default", name: "orphan", scheduled: 1, nameHandledElsewhere: false),
            UnhandledTasks(queue: "reports", name: "orphan", scheduled: 1, nameHandledElsewhere: false),
            UnhandledTasks(queue: "reports", name: "resize", scheduled: 2, nameHandledElsewhere: true),
        ])
        // Within the batch: only its own items, counted in it.
        await #expect(try store.unhandledTasks(now: now, batch: batch.id)
                == [UnhandledTasks(queue: "default", name: "orphan", scheduled: 1, nameHandledElsewhere: false)])
        // A live worker for everything in every queue: nothing waits.
        try await store.registerWorker(worker("all", queues: ["default", "reports"], names: ["*"]))
        await #expect(try store.unhandledTasks(now: now).isEmpty)
    }
}
