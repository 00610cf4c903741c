import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore
import RotaSQLite

@Suite("SQLiteTaskStore: claim and complete")
struct SQLiteTaskStoreRunTests {
    // MARK: Claim

    @Test func claimTakesHigherPriorityFirstThenOlderRunAt() async throws {
        let f = try StoreFixture()
        let base = Date()
        let ids = try await f.store.enqueue([
            TaskSpec(name: "p0-old", priority: 0, runAt: instant(-30, from: base)),
            TaskSpec(name: "p5-new", priority: 5, runAt: instant(-10, from: base)),
            TaskSpec(name: "p5-old", priority: 5, runAt: instant(-20, from: base)),
            TaskSpec(name: "p0-new", priority: 0, runAt: instant(-5, from: base)),
            TaskSpec(name: "p9", priority: 9, runAt: instant(-1, from: base)),
        ]).map(\.id)
        let claimed = try await f.store.claimAll(now: base)
        #expect(claimed.map(\.name) == ["p9", "p5-old", "p5-new", "p0-old", "p0-new"])
        #expect(Set(claimed.map(\.id)) == Set(ids))
    }

    @Test func claimWithLimitOneTakesTasksInPriorityOrder() async throws {
        let f = try StoreFixture()
        let base = Date()
        _ = try await f.store.enqueue([
            TaskSpec(name: "low", priority: 1, runAt: instant(-30, from: base)),
            TaskSpec(name: "high-late", priority: 3, runAt: instant(-1, from: base)),
            TaskSpec(name: "high-early", priority: 3, runAt: instant(-2, from: base)),
        ])
        var order: [String] = []
        for _ in 0..<4 {
            order += try await f.store.claim([ClaimRequest(queue: "default", names: nil, limit: 1)],
                                             worker: "w1", leaseUntil: instant(30), now: base).map(\.name)
        }
        #expect(order == ["high-early", "high-late", "low"])
    }

    @Test func claimLeavesNotYetDueTasks() async throws {
        let f = try StoreFixture()
        let now = Date()
        let due = try await f.store.enqueue(TaskSpec(name: "due", runAt: instant(-1, from: now))).id
        let exactlyNow = try await f.store.enqueue(TaskSpec(name: "now", runAt: instant(0, from: now))).id
        let later = try await f.store.enqueue(TaskSpec(name: "later", priority: 9, runAt: instant(60, from: now))).id
        let claimed = try await f.store.claimAll(now: instant(0, from: now))
        #expect(Set(claimed.map(\.id)) == [due, exactlyNow])
        #expect(try await f.store.record(later).state == .scheduled)
        #expect(try await f.store.claimAll(now: instant(59, from: now)).isEmpty)
        #expect(try await f.store.claimAll(now: instant(60, from: now)).map(\.id) == [later])
    }

    @Test func claimRespectsTheLimit() async throws {
        let f = try StoreFixture()
        _ = try await f.store.enqueue((0..<7).map { TaskSpec(name: "t\($0)") })
        let now = instant(1)
        let first = try await f.store.claim([ClaimRequest(queue: "default", names: nil, limit: 3)], worker: "w1", leaseUntil: instant(30), now: now)
        #expect(first.count == 3)
        let zero = try await f.store.claim([ClaimRequest(queue: "default", names: nil, limit: 0)], worker: "w1", leaseUntil: instant(30), now: now)
        #expect(zero.isEmpty)
        let rest = try await f.store.claim([ClaimRequest(queue: "default", names: nil, limit: 10)], worker: "w1", leaseUntil: instant(30), now: now)
        #expect(rest.count == 4)
        #expect(Set(first.map(\.id)).isDisjoint(with: rest.map(\.id)))
        #expect(try await f.store.stats(now: now).states[.running] == 7)
    }

    @Test func claimOnlyTakesTheRequestedNames() async throws {
        let f = try StoreFixture()
        let ids = try await f.store.enqueue([TaskSpec(name: "a"), TaskSpec(name: "b"), TaskSpec(name: "c")]).map(\.id)
        let now = instant(1)
        #expect(try await f.store.claimAll(names: [], now: now).isEmpty)
        #expect(try await f.store.claimAll(names: ["zzz"], now: now).isEmpty)
        let claimed = try await f.store.claimAll(names: ["a", "c"], now: now)
        #expect(Set(claimed.map(\.id)) == [ids[0], ids[2]])
        #expect(try await f.store.record(ids[1]).state == .scheduled)
        #expect(try await f.store.claimAll(names: nil, now: now).map(\.id) == [ids[1]])
    }

    @Test func claimKeepsQueuesSeparate() async throws {
        let f = try StoreFixture()
        let mail = try await f.store.enqueue(TaskSpec(name: "x", queue: "mail", priority: 9)).id
        let reports = try await f.store.enqueue(TaskSpec(name: "x", queue: "reports")).id
        // An hour ahead: the tasks enqueued below are due by then however slowly this test runs.
        let now = instant(3600)
        #expect(try await f.store.claimAll("default", now: now).isEmpty)
        #expect(try await f.store.claimAll("reports", now: now).map(\.id) == [reports])
        #expect(try await f.store.record(mail).state == .scheduled)
        // Several queues in one claim, each with its own limit.
        let more = try await f.store.enqueue([TaskSpec(name: "x", queue: "mail"), TaskSpec(name: "x", queue: "reports"),
                                              TaskSpec(name: "x", queue: "reports")]).map(\.id)
        let claimed = try await f.store.claim([ClaimRequest(queue: "mail", names: nil, limit: 5),
                                               ClaimRequest(queue: "reports", names: nil, limit: 1)],
                                              worker: "w1", leaseUntil: instant(3630), now: now)
        #expect(claimed.filter { $0.queue == "mail" }.map(\.id).sorted() == [mail, more[0]])
        #expect(claimed.filter { $0.queue == "reports" }.map(\.id) == [more[1]])
    }

    @Test func claimStartsAnAttemptUnderALease() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", payload: #"{"n":1}"#, queue: "q", priority: 2,
                                                    maxAttempts: 4, timeout: .milliseconds(1500))).id
        let now = instant(1)
        let leaseUntil = instant(31)
        let claimed = try #require(try await f.store.claimAll("q", worker: "worker-a", leaseUntil: leaseUntil, now: now).first)
        #expect(claimed.id == id)
        #expect(claimed.name == "job" && claimed.queue == "q" && claimed.payload == #"{"n":1}"#)
        #expect(claimed.attempt == 1)
        #expect(claimed.maxAttempts == 4)
        #expect(claimed.timeout == .milliseconds(1500))
        #expect(claimed.priority == 2)
        #expect(claimed.startedAt == now)

        let task = try await f.store.record(id)
        #expect(task.state == .running)
        #expect(task.attempts == 1)
        #expect(task.leaseOwner == "worker-a")
        #expect(task.leaseUntil == leaseUntil)
        #expect(task.startedAt == now)
        #expect(task.updatedAt == now)
        // A running task is not claimed again.
        #expect(try await f.store.claimAll("q", worker: "worker-b", now: now).isEmpty)
        #expect(try await f.store.attempts(of: id).isEmpty)
    }

    // MARK: Complete

    @Test func succeededCompletionRecordsTheResult() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job")).id
        let claimed = try #require(try await f.store.claimAll(now: instant(0)).first)
        let finished = instant(2)
        let applied = try await f.store.complete([Completion(claimed, finishedAt: finished, .succeeded(result: #"{"ok":true}"#))])
        #expect(applied == [true])

        let task = try await f.store.record(id)
        #expect(task.state == .succeeded)
        #expect(task.finishedAt == finished)
        #expect(task.updatedAt == finished)
        #expect(task.leaseOwner == nil && task.leaseUntil == nil)
        #expect(task.result == #"{"ok":true}"#)
        #expect(task.attempts == 1)
        let attempts = try await f.store.attempts(of: id)
        #expect(attempts == [AttemptRecord(taskID: id, attempt: 1, worker: "w1", startedAt: claimed.startedAt,
                                           finishedAt: finished, outcome: .succeeded, error: nil, result: #"{"ok":true}"#)])
        #expect(attempts[0].duration == .milliseconds(finished.unixMillis - claimed.startedAt.unixMillis))
    }

    @Test func succeededCompletionWithoutResult() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job")).id
        let claimed = try #require(try await f.store.claimAll(now: instant(0)).first)
        #expect(try await f.store.complete([Completion(claimed, .succeeded(result: nil))]) == [true])
        #expect(try await f.store.record(id).state == .succeeded)
        #expect(try await f.store.record(id).result == nil)
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.succeeded])
    }

    @Test func retryCompletionSchedulesTheTaskAgainLater() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", maxAttempts: 3)).id
        let now = instant(0)
        let first = try #require(try await f.store.claimAll(now: now).first)
        let retryAt = instant(10, from: now)
        let applied = try await f.store.complete([Completion(first, finishedAt: instant(1, from: now),
                                                             .retry(outcome: .failed, error: "boom", runAt: retryAt))])
        #expect(applied == [true])

        let task = try await f.store.record(id)
        #expect(task.state == .scheduled)
        #expect(task.attempts == 1)
        #expect(task.runAt == retryAt)
        #expect(task.lastError == "boom")
        #expect(task.leaseOwner == nil && task.leaseUntil == nil)
        #expect(task.finishedAt == nil)
        #expect(try await f.store.attempts(of: id).map { [$0.attempt: $0.outcome] } == [[1: .failed]])
        #expect(try await f.store.attempts(of: id).first?.error == "boom")

        // Not claimable before its new run_at; then attempt 2.
        #expect(try await f.store.claimAll(now: instant(9, from: now)).isEmpty)
        let second = try #require(try await f.store.claimAll(now: retryAt).first)
        #expect(second.attempt == 2)
        #expect(try await f.store.complete([Completion(second, .retry(outcome: .timedOut, error: "slow", runAt: retryAt))]) == [true])
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.failed, .timedOut])
        #expect(try await f.store.record(id).attempts == 2)
    }

    @Test func deadCompletionEndsTheTask() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", maxAttempts: 1)).id
        let claimed = try #require(try await f.store.claimAll(now: instant(0)).first)
        let finished = instant(1)
        #expect(try await f.store.complete([Completion(claimed, finishedAt: finished, .dead(outcome: .failed, error: "fatal"))]) == [true])
        let task = try await f.store.record(id)
        #expect(task.state == .dead)
        #expect(task.finishedAt == finished)
        #expect(task.lastError == "fatal")
        #expect(task.leaseOwner == nil)
        #expect(task.result == nil)
        let attempt = try #require(try await f.store.attempts(of: id).first)
        #expect(attempt.outcome == .failed && attempt.error == "fatal" && attempt.attempt == 1)
        #expect(try await f.store.claimAll(now: instant(100)).isEmpty)
    }

    @Test func cancelledCompletionEndsTheTask() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job")).id
        let claimed = try #require(try await f.store.claimAll(now: instant(0)).first)
        let finished = instant(1)
        #expect(try await f.store.complete([Completion(claimed, finishedAt: finished, .cancelled(reason: "asked to stop"))]) == [true])
        let task = try await f.store.record(id)
        #expect(task.state == .cancelled)
        #expect(task.finishedAt == finished)
        #expect(task.lastError == "asked to stop")
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.cancelled])
    }

    @Test func handBackMakesTheTaskDueAgainAtOnce() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: instant(-60))).id
        let claimed = try #require(try await f.store.claimAll(now: instant(0)).first)
        let finished = instant(1)
        #expect(try await f.store.complete([Completion(claimed, finishedAt: finished, .handBack(reason: "shutting down"))]) == [true])
        let task = try await f.store.record(id)
        #expect(task.state == .scheduled)
        #expect(task.runAt == finished)
        #expect(task.leaseOwner == nil && task.leaseUntil == nil)
        #expect(task.finishedAt == nil)
        let attempt = try #require(try await f.store.attempts(of: id).first)
        #expect(attempt.outcome == .cancelled && attempt.error == "shutting down")
        let again = try #require(try await f.store.claimAll(worker: "w2", now: finished).first)
        #expect(again.id == id)
        #expect(again.attempt == 2)
        #expect(again.maxAttempts == task.maxAttempts)
        #expect(task.maxAttempts == TaskSpec(name: "job").maxAttempts + 1)  // the handed-back attempt is not used up
    }

    @Test func manyCompletionsInOneCallAreEachApplied() async throws {
        let f = try StoreFixture()
        _ = try await f.store.enqueue((0..<3).map { TaskSpec(name: "t\($0)") })
        let claimed = try await f.store.claimAll(now: instant(1))
        #expect(claimed.count == 3)
        let applied = try await f.store.complete([
            Completion(claimed[0], .succeeded(result: "1")),
            Completion(claimed[1], .dead(outcome: .failed, error: "x")),
            Completion(claimed[2], .retry(outcome: .failed, error: "y", runAt: instant(60))),
        ])
        #expect(applied == [true, true, true])
        let states = try await [claimed[0].id, claimed[1].id, claimed[2].id].asyncMap { try await f.store.record($0).state }
        #expect(states == [.succeeded, .dead, .scheduled])
        #expect(try await f.store.complete([]) == [])
    }

    // MARK: Stale completions

    @Test func completionForAnotherAttemptIsIgnored() async throws {
        let f = try StoreFixture()
        _ = try await f.store.enqueue(TaskSpec(name: "job"))
        let claimed = try #require(try await f.store.claimAll(now: instant(0)).first)
        let before = try f.dump()
        var stale = Completion(claimed, .succeeded(result: "1"))
        stale.attempt = claimed.attempt + 1
        #expect(try await f.store.complete([stale]) == [false])
        stale.attempt = claimed.attempt - 1
        #expect(try await f.store.complete([stale]) == [false])
        #expect(try f.dump() == before)
    }

    @Test func completionFromAnotherWorkerIsIgnored() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job")).id
        let claimed = try #require(try await f.store.claimAll(worker: "w1", now: instant(0)).first)
        let before = try f.dump()
        for resolution: Completion.Resolution in [.succeeded(result: "1"), .dead(outcome: .failed, error: "x"),
                                                  .retry(outcome: .failed, error: "x", runAt: instant(5)),
                                                  .cancelled(reason: "x"), .handBack(reason: "x")] {
            #expect(try await f.store.complete([Completion(claimed, worker: "w2", resolution)]) == [false])
        }
        #expect(try f.dump() == before)
        #expect(try await f.store.record(id).state == .running)
    }

    @Test func secondCompletionOfTheSameAttemptIsIgnored() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job")).id
        let claimed = try #require(try await f.store.claimAll(now: instant(0)).first)
        let applied = try await f.store.complete([Completion(claimed, .succeeded(result: "1")),
                                                  Completion(claimed, .dead(outcome: .failed, error: "late"))])
        #expect(applied == [true, false])
        #expect(try await f.store.complete([Completion(claimed, .succeeded(result: "2"))]) == [false])
        #expect(try await f.store.record(id).state == .succeeded)
        #expect(try await f.store.record(id).result == "1")
        #expect(try await f.store.attempts(of: id).count == 1)
    }

    @Test func completionAfterLeaseRecoveryIsIgnored() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", maxAttempts: 5)).id
        let now = instant(0)
        let claimed = try #require(try await f.store.claimAll(leaseUntil: instant(10, from: now), now: now).first)
        #expect(try await f.store.recoverExpiredLeases(now: instant(11, from: now)) == [id])
        let afterRecovery = try f.dump()
        #expect(try await f.store.complete([Completion(claimed, .succeeded(result: "1"))]) == [false])
        #expect(try f.dump() == afterRecovery)

        // Re-claimed by another worker: the old worker's completion of the old attempt is still ignored.
        let reclaimed = try #require(try await f.store.claimAll(worker: "w2", now: instant(12, from: now)).first)
        #expect(reclaimed.attempt == 2)
        let afterReclaim = try f.dump()
        #expect(try await f.store.complete([Completion(claimed, worker: "w1", .succeeded(result: "1"))]) == [false])
        #expect(try f.dump() == afterReclaim)
        #expect(try await f.store.complete([Completion(reclaimed, worker: "w2", .succeeded(result: "2"))]) == [true])
        #expect(try await f.store.record(id).result == "2")
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.lost, .succeeded])
    }

    @Test func completionOfAFinishedOrMissingTaskIsIgnored() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job")).id
        let claimed = try #require(try await f.store.claimAll(now: instant(0)).first)
        #expect(try await f.store.complete([Completion(claimed, .dead(outcome: .failed, error: "x"))]) == [true])
        _ = try await f.store.retry([id], now: instant(1))
        let before = try f.dump()
        // The task is scheduled again (not running): the old attempt's completion is ignored.
        #expect(try await f.store.complete([Completion(claimed, .succeeded(result: "1"))]) == [false])
        var missing = Completion(claimed, .succeeded(result: "1"))
        missing.taskID = 9_999
        #expect(try await f.store.complete([missing]) == [false])
        #expect(try f.dump() == before)
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
