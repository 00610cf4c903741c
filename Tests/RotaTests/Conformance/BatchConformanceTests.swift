import Foundation
import Testing
@testable import Rota

@Suite("Store conformance: batches")
struct BatchConformanceTests {
    struct Item: Codable, Equatable { var n: Int }

    /// Claims up to `limit` due tasks named `names` at `now` and ends each with `resolution`, as a worker would.
    /// - Returns: how many it ran.
    @discardableResult
    private func work(_ store: some TaskStore, queue: String = "default", names: [String]? = ["item"], limit: Int = 1_000,
                      now: Date, _ resolution: (ClaimedTask) -> Completion.Resolution) async throws -> Int {
        let claimed = try await store.claimDue(queue, names: names, worker: "w", limit: limit, now: now)
        let applied = try await store.complete(claimed.map { $0.completing(resolution($0), worker: "w", at: now) })
        #expect(applied.allSatisfy { $0 })
        return claimed.count
    }

    private func callbacks(_ store: some TaskStore, name: String = "report") async throws -> [TaskRecord] {
        try await store.list(TaskFilter(name: name, limit: 100))
    }

    @Test(arguments: StoreKind.all)
    func openingABatchTwiceOpensTheSameBatchUnsealed(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let first = try await f.store.openBatch(name: "b", queue: "imports", onComplete: #"{"name":"report"}"#)
        #expect(first.name == "b" && first.queue == "imports" && first.total == 0 && first.finished == 0)
        #expect(!first.sealed && first.completedAt == nil && first.phase == "submitting")
        #expect(first.onComplete == #"{"name":"report"}"#)
        let sealed = try await f.store.sealBatch(first.id)
        #expect(sealed.sealed)
        // Opened again (a resumed submission): the same batch, unsealed, its on_complete kept.
        let again = try await f.store.openBatch(name: "b")
        #expect(again.id == first.id)
        #expect(!again.sealed)
        #expect(again.queue == "imports")
        #expect(again.onComplete == #"{"name":"report"}"#)
        #expect(try await f.store.batches(limit: 10).count == 1)
        #expect(try await f.store.batch(named: "b") == again)
        // An on_complete given when opening replaces the stored one.
        let replaced = try await f.store.openBatch(name: "b", onComplete: #"{"name":"other"}"#)
        #expect(replaced.onComplete == #"{"name":"other"}"#)
    }

    @Test(arguments: StoreKind.all)
    func submittingTheSameBatchTwiceAddsNothing(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let batch = try await f.store.submitBatch(name: "b", taskName: "item", payloads: (1...25).map { Item(n: $0) }, chunk: 10)
        #expect(batch.total == 25 && batch.sealed && batch.finished == 0)
        let tasks = try await f.store.allTasks()
        #expect(tasks.count == 25)
        #expect(Set(tasks.compactMap(\.batchItem)).count == 25)
        #expect(tasks.allSatisfy { $0.batch == "b" && $0.name == "item" })
        let again = try await f.store.submitBatch(name: "b", taskName: "item", payloads: (1...25).map { Item(n: $0) }, chunk: 7)
        #expect(again.id == batch.id)
        #expect(again.total == 25 && again.sealed)
        #expect(try await f.store.allTasks() == tasks)
        #expect(try await f.store.batches(limit: 10).count == 1)
    }

    @Test(arguments: StoreKind.all)
    func aResumedSubmissionAddsOnlyTheMissingItems(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        // A first submission killed after 40 items: opened, items added, never sealed.
        let first = try await f.store.openBatch(name: "b")
        #expect(try await f.store.addBatchItems(first.id, (1...40).map { TaskSpec(name: "item", payload: #"{"n":\#($0)}"#, batchItem: String($0)) }) == 40)
        #expect(try await f.store.batch(named: "b")?.sealed == false)
        let batch = try await f.store.submitBatch(name: "b", taskName: "item", payloads: (1...100).map { Item(n: $0) }, chunk: 30)
        #expect(batch.total == 100)
        #expect(batch.sealed)
        let items = try await f.store.list(TaskFilter(batch: "b", limit: 1_000))
        #expect(items.count == 100)
        #expect(Set(items.compactMap(\.batchItem)) == Set((1...100).map(String.init)))
    }

    @Test(arguments: StoreKind.all)
    func aBatchCountsItsItemsAndTheFinishedOnes(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.submitBatch(name: "b", taskName: "item", payloads: (1...6).map { Item(n: $0) })
        #expect(try await work(f.store, limit: 2, now: at(10)) { _ in .succeeded(result: nil) } == 2)
        #expect(try await work(f.store, limit: 1, now: at(11)) { _ in .dead(outcome: .failed, error: "x") } == 1)
        #expect(try await work(f.store, limit: 1, now: at(12)) { _ in .retry(outcome: .failed, error: "y", runAt: at(3600)) } == 1)
        _ = try await f.store.claimDue(names: ["item"], limit: 1, now: at(13))
        let batch = try #require(try await f.store.batch(named: "b"))
        #expect(batch.total == 6)
        #expect(batch.finished == 3)
        #expect(batch.completedAt == nil && batch.phase == "running")
    }

    @Test(arguments: StoreKind.all)
    func onCompleteIsEnqueuedExactlyOnceWhenTheSealedBatchFinishes(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.submitBatch(name: "nightly", taskName: "item", payloads: (1...10).map { Item(n: $0) },
                                          onComplete: #"{"name": "report", "queue": "reports"}"#)
        #expect(try await work(f.store, limit: 5, now: at(10)) { _ in .succeeded(result: nil) } == 5)
        #expect(try await f.store.batch(named: "nightly")?.completedAt == nil)
        #expect(try await callbacks(f.store).isEmpty)
        #expect(try await work(f.store, now: at(20)) { _ in .dead(outcome: .failed, error: "boom") } == 5)
        let done = try #require(try await f.store.batch(named: "nightly"))
        #expect(done.finished == 10 && done.total == 10)
        #expect(done.completedAt != nil && done.phase == "complete")
        let callbacks = try await callbacks(f.store)
        #expect(callbacks.count == 1)
        let callback = try #require(callbacks.first)
        #expect(callback.queue == "reports")
        #expect(callback.state == .scheduled)
        #expect(jsonValue(callback.payload) == jsonValue(#"{"batch":"nightly"}"#))  // the default payload
        #expect(callback.batch == nil)
        // It is due: a worker of its queue claims it.
        #expect(try await f.store.claimDue("reports", now: at(30)).map(\.id) == [callback.id])
        #expect(try await self.callbacks(f.store).count == 1)
    }

    @Test(arguments: StoreKind.all)
    func onCompleteCarriesThePayloadOfItsSpecInTheBatchsQueue(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.submitBatch(name: "b", taskName: "item", payloads: [Item(n: 1)], queue: "work",
                                          onComplete: #"{"name": "report", "payload": {"k": [1, 2]}}"#)
        #expect(try await work(f.store, queue: "work", now: at(10)) { _ in .succeeded(result: nil) } == 1)
        let callback = try #require(try await callbacks(f.store).first)
        #expect(callback.queue == "work")  // the batch's queue, as the spec names none
        #expect(jsonValue(callback.payload) == jsonValue(#"{"k":[1,2]}"#))
    }

    @Test(arguments: StoreKind.all)
    func aBatchWhoseItemsAllFinishedBeforeSealingCompletesAtTheSeal(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let batch = try await f.store.openBatch(name: "quick", onComplete: #"{"name": "report"}"#)
        _ = try await f.store.addBatchItems(batch.id, [TaskSpec(name: "item", batchItem: "1"), TaskSpec(name: "item", batchItem: "2")])
        try await work(f.store, now: at(10)) { _ in .succeeded(result: nil) }
        let unsealed = try #require(try await f.store.batch(named: "quick"))
        #expect(unsealed.finished == 2 && unsealed.completedAt == nil)  // not sealed yet: more may come
        #expect(try await callbacks(f.store).isEmpty)
        let sealed = try await f.store.sealBatch(batch.id)
        #expect(sealed.completedAt != nil && sealed.phase == "complete")
        #expect(try await callbacks(f.store).count == 1)
        // Sealing again changes nothing.
        _ = try await f.store.sealBatch(batch.id)
        #expect(try await callbacks(f.store).count == 1)
    }

    @Test(arguments: StoreKind.all)
    func anEmptyBatchCompletesWhenSealed(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let batch = try await f.store.submitBatch(name: "empty", taskName: "item", payloads: [Item](), onComplete: #"{"name": "report"}"#)
        #expect(batch.total == 0 && batch.completedAt != nil)
        #expect(try await callbacks(f.store).count == 1)
    }

    @Test(arguments: StoreKind.all)
    func retryingABatchReopensItAndOnCompleteDoesNotRunAgain(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.submitBatch(name: "nightly", taskName: "item", payloads: (1...10).map { Item(n: $0) },
                                          onComplete: #"{"name": "report"}"#)
        try await work(f.store, limit: 5, now: at(10)) { _ in .succeeded(result: nil) }
        try await work(f.store, now: at(20)) { _ in .dead(outcome: .failed, error: "boom") }
        #expect(try await f.store.batch(named: "nightly")?.completedAt != nil)
        #expect(try await f.store.retryBatch("nightly", now: at(30)) == 5)
        let reopened = try #require(try await f.store.batch(named: "nightly"))
        #expect(reopened.finished == 5 && reopened.total == 10)
        #expect(reopened.completedAt == nil && reopened.phase == "running")
        let retried = try await f.store.list(TaskFilter(states: [.scheduled], batch: "nightly"))
        #expect(retried.count == 5 && retried.allSatisfy { $0.runAt == at(30) && $0.maxAttempts >= 2 })
        #expect(try await f.store.retryBatch("nightly", now: at(31)) == 0)  // nothing dead left
        try await work(f.store, now: at(40)) { _ in .succeeded(result: nil) }
        let again = try #require(try await f.store.batch(named: "nightly"))
        #expect(again.finished == 10 && again.completedAt != nil && again.phase == "complete")
        #expect(try await callbacks(f.store).count == 1)
    }

    @Test(arguments: StoreKind.all)
    func aPurgedOnCompleteTaskIsNotEnqueuedAgainWhenTheBatchCompletesAgain(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let batch = try await f.store.submitBatch(name: "p", taskName: "item", payloads: [Item(n: 1)], onComplete: #"{"name": "report"}"#)
        #expect(try await work(f.store, now: at(10)) { _ in .succeeded(result: nil) } == 1)
        #expect(try await work(f.store, names: ["report"], now: at(20)) { _ in .succeeded(result: nil) } == 1)
        #expect(try await f.store.purge(olderThan: at(60), states: [.succeeded]) == 2)
        #expect(try await callbacks(f.store).isEmpty)
        // New items reopen the completed batch; finishing them completes it without a second callback.
        _ = try await f.store.openBatch(name: "p")
        #expect(try await f.store.addBatchItems(batch.id, [TaskSpec(name: "item", batchItem: "extra")]) == 1)
        #expect(try await f.store.batch(named: "p")?.completedAt == nil)
        _ = try await f.store.sealBatch(batch.id)
        #expect(try await f.store.batch(named: "p")?.phase == "running")
        #expect(try await work(f.store, now: at(70)) { _ in .succeeded(result: nil) } == 1)
        #expect(try await f.store.batch(named: "p")?.completedAt != nil)
        #expect(try await callbacks(f.store).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func cancellingABatchCancelsItsScheduledItemsAndAsksRunningOnesToStop(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.submitBatch(name: "c", taskName: "item", payloads: (1...5).map { Item(n: $0) })
        let outside = try await f.store.enqueue(TaskSpec(name: "item", runAt: at(0))).id
        let running = try await f.store.claim([ClaimRequest(queue: "default", names: ["item"], limit: 2)], worker: "w",
                                              leaseUntil: at(60), now: at(0))
        #expect(running.allSatisfy { $0.id != outside })
        let result = try await f.store.cancelBatch("c", now: at(5))
        #expect(result.cancelled == 3 && result.requested == 2)
        #expect(Set(try await f.store.heartbeat(worker: "w", now: at(6), leaseUntil: at(60))) == Set(running.map(\.id)))
        #expect(try await f.store.existing(outside).state == .scheduled)
        let cancelled = try await f.store.list(TaskFilter(states: [.cancelled], batch: "c"))
        #expect(cancelled.count == 3 && cancelled.allSatisfy { $0.finishedAt == at(5) })
        let batch = try #require(try await f.store.batch(named: "c"))
        #expect(batch.finished == 3 && batch.completedAt == nil)
        // The running items end cancelled: the batch is complete.
        _ = try await f.store.complete(running.map { $0.completing(.cancelled(reason: "batch cancelled"), worker: "w", at: at(7)) })
        #expect(try await f.store.batch(named: "c")?.completedAt != nil)
    }

    @Test(arguments: StoreKind.all)
    func batchStatusCountsItemsPerStateAndRecentFinishes(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue(TaskSpec(name: "item", runAt: at(0)))  // outside the batch: not counted
        _ = try await f.store.submitBatch(name: "s", taskName: "item", payloads: (1...8).map { Item(n: $0) })
        try await work(f.store, limit: 2, now: at(10)) { _ in .succeeded(result: nil) }
        try await work(f.store, limit: 1, now: at(100)) { _ in .dead(outcome: .failed, error: "x") }
        _ = try await f.store.claimDue(names: ["item"], limit: 1, now: at(101))
        let status = try await f.store.batchStatus("s", now: at(120))
        #expect(status.states == [.scheduled: 4, .running: 1, .succeeded: 2, .dead: 1, .cancelled: 0])
        #expect(status.batch.total == 8 && status.batch.finished == 3)
        #expect(status.remaining == 5)
        #expect(status.finishedLastMinute == 1)  // at(100); at(10) is older than at(120) - 60 s
        #expect(status.firstFinishedAt == at(10))
        #expect(status.lastFinishedAt == at(100))
        let later = try await f.store.batchStatus("s", now: at(1000))
        #expect(later.finishedLastMinute == 0)
    }

    @Test(arguments: StoreKind.all)
    func anUnknownBatchIsNotFound(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        #expect(try await f.store.batch(named: "missing") == nil)
        #expect(await rotaError { _ = try await f.store.batchStatus("missing", now: at(0)) }?.code == .notFound)
        #expect(await rotaError { _ = try await f.store.retryBatch("missing", now: at(0)) }?.code == .notFound)
        #expect(await rotaError { _ = try await f.store.cancelBatch("missing", now: at(0)) }?.code == .notFound)
        #expect(await rotaError { _ = try await f.store.sealBatch(424_242) }?.code == .notFound)
        #expect(try await f.store.batches(limit: 10).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func badOnCompleteSpecsAndNamesAreRefusedAndNothingIsWritten(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        for bad in ["[]", "{}", #"{"name": ""}"#, #"{"name": "x", "payload": "text"}"#, #"{"name": "x", "queue": 3}"#, "not json"] {
            let error = await rotaError { _ = try await f.store.openBatch(name: "bad", onComplete: bad) }
            #expect(error?.code == .invalidInput, "\(bad)")
        }
        #expect(await rotaError { _ = try await f.store.openBatch(name: " ") }?.field == "name")
        #expect(try await f.store.batches(limit: 10).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func batchesAreListedNewestFirst(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        for name in ["a", "b", "c"] { _ = try await f.store.openBatch(name: name) }
        #expect(try await f.store.batches(limit: 10).map(\.name) == ["c", "b", "a"])
        #expect(try await f.store.batches(limit: 2).map(\.name) == ["c", "b"])
        let ids = try await f.store.batches(limit: 10).map(\.id)
        #expect(ids == ids.sorted(by: >))
    }

    @Test(arguments: StoreKind.all)
    func purgingFinishedItemsKeepsTheBatchCountsTrue(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.submitBatch(name: "p", taskName: "item", payloads: (1...4).map { Item(n: $0) })
        try await work(f.store, limit: 3, now: at(10)) { _ in .succeeded(result: nil) }
        #expect(try await f.store.purge(olderThan: at(60), states: []) == 3)
        let batch = try #require(try await f.store.batch(named: "p"))
        #expect(batch.total == 1 && batch.finished == 0)
        let status = try await f.store.batchStatus("p", now: at(60))
        #expect(status.states[.scheduled] == 1 && status.states[.succeeded] == 0)
    }
}
