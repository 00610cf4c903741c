import Foundation
import Testing
@testable import Rota

@Suite("Store conformance: completions and fencing")
struct CompletionConformanceTests {
    // MARK: Resolutions

    @Test(arguments: StoreKind.all)
    func aSuccessRecordsTheResultAndItsAttempt(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0))).id
        let claimed = try await f.store.claimOne(now: at(0))
        #expect(try await f.store.complete([claimed.completing(.succeeded(result: #"{"ok":true}"#), at: at(2))]) == [true])
        let task = try await f.store.existing(id)
        #expect(task.state == .succeeded)
        #expect(task.finishedAt == at(2))
        #expect(task.updatedAt == at(2))
        #expect(task.leaseOwner == nil && task.leaseUntil == nil)
        #expect(task.result == #"{"ok":true}"#)
        #expect(task.attempts == 1)
        #expect(try await f.store.attempts(of: id) == [
            AttemptRecord(taskID: id, attempt: 1, worker: "w1", startedAt: at(0), finishedAt: at(2), outcome: .succeeded,
                          error: nil, result: #"{"ok":true}"#),
        ])
        #expect(try await f.store.claimDue(now: at(100)).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func aSuccessWithoutAResultHasNone(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0))).id
        let claimed = try await f.store.claimOne()
        #expect(try await f.store.complete([claimed.completing(.succeeded(result: nil), at: at(1))]) == [true])
        #expect(try await f.store.existing(id).state == .succeeded)
        #expect(try await f.store.existing(id).result == nil)
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.succeeded])
    }

    @Test(arguments: StoreKind.all)
    func aRetryReschedulesTheTaskAtItsBackoffInstant(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 3)).id
        let first = try await f.store.claimOne(now: at(0))
        #expect(try await f.store.complete([first.completing(.retry(outcome: .failed, error: "boom", runAt: at(10)), at: at(1))]) == [true])
        let task = try await f.store.existing(id)
        #expect(task.state == .scheduled)
        #expect(task.attempts == 1)
        #expect(task.runAt == at(10))
        #expect(task.lastError == "boom")
        #expect(task.leaseOwner == nil && task.leaseUntil == nil)
        #expect(task.finishedAt == nil)
        #expect(task.updatedAt == at(1))
        let attempts = try await f.store.attempts(of: id)
        #expect(attempts.map(\.attempt) == [1])
        #expect(attempts.first?.outcome == .failed && attempts.first?.error == "boom" && attempts.first?.finishedAt == at(1))
        // Not claimable before its backoff ends; then attempt 2.
        #expect(try await f.store.claimDue(now: at(9.999)).isEmpty)
        #expect(try await f.store.nextRunAt(queues: ["default"], names: nil) == at(10))
        let second = try await f.store.claimOne(now: at(10))
        #expect(second.attempt == 2)
        #expect(try await f.store.complete([second.completing(.retry(outcome: .timedOut, error: "slow", runAt: at(30)), at: at(11))]) == [true])
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.failed, .timedOut])
        #expect(try await f.store.existing(id).attempts == 2)
    }

    @Test(arguments: StoreKind.all)
    func aTaskRetriedUpToItsLastAttemptEndsDead(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 3)).id
        for n in 1...3 {
            let now = at(Double(n * 10))
            let claimed = try await f.store.claimOne(now: now)
            #expect(claimed.attempt == n && claimed.maxAttempts == 3)
            let resolution: Completion.Resolution = n < 3
                ? .retry(outcome: .failed, error: "e\(n)", runAt: at(Double(n * 10 + 5)))
                : .dead(outcome: .failed, error: "e\(n)")
            #expect(try await f.store.complete([claimed.completing(resolution, at: now.addingTimeInterval(1))]) == [true])
        }
        let task = try await f.store.existing(id)
        #expect(task.state == .dead)
        #expect(task.attempts == 3)
        #expect(task.lastError == "e3")
        #expect(task.finishedAt == at(31))
        let attempts = try await f.store.attempts(of: id)
        #expect(attempts.map(\.attempt) == [1, 2, 3])
        #expect(attempts.map(\.error) == ["e1", "e2", "e3"])
        #expect(try await f.store.claimDue(now: at(1000)).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func aDeadEndEndsTheTask(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 5)).id
        let claimed = try await f.store.claimOne()
        #expect(try await f.store.complete([claimed.completing(.dead(outcome: .failed, error: "fatal"), at: at(1))]) == [true])
        let task = try await f.store.existing(id)
        #expect(task.state == .dead)
        #expect(task.finishedAt == at(1))
        #expect(task.lastError == "fatal")
        #expect(task.leaseOwner == nil)
        #expect(task.result == nil)
        let attempt = try #require(try await f.store.attempts(of: id).first)
        #expect(attempt.outcome == .failed && attempt.error == "fatal" && attempt.attempt == 1)
        #expect(try await f.store.claimDue(now: at(100)).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func aCancelledEndEndsTheTask(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0))).id
        let claimed = try await f.store.claimOne()
        #expect(try await f.store.complete([claimed.completing(.cancelled(reason: "asked to stop"), at: at(1))]) == [true])
        let task = try await f.store.existing(id)
        #expect(task.state == .cancelled)
        #expect(task.finishedAt == at(1))
        #expect(task.lastError == "asked to stop")
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.cancelled])
        #expect(try await f.store.claimDue(now: at(100)).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func aHandBackMakesTheTaskDueAtOnceWithoutUsingUpAnAttempt(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(-60), maxAttempts: 1)).id
        let claimed = try await f.store.claimOne(now: at(0))
        #expect(try await f.store.complete([claimed.completing(.handBack(reason: "shutting down"), at: at(1))]) == [true])
        let task = try await f.store.existing(id)
        #expect(task.state == .scheduled)
        #expect(task.runAt == at(1))
        #expect(task.leaseOwner == nil && task.leaseUntil == nil)
        #expect(task.finishedAt == nil)
        #expect(task.attempts == 1)
        #expect(task.maxAttempts == 2)  // one more: the handed-back attempt is not used up
        let attempt = try #require(try await f.store.attempts(of: id).first)
        #expect(attempt.outcome == .cancelled && attempt.error == "shutting down")
        let again = try await f.store.claimOne(worker: "w2", now: at(1))
        #expect(again.id == id)
        #expect(again.attempt == 2)
        #expect(again.maxAttempts == 2)
    }

    @Test(arguments: StoreKind.all)
    func manyEndsInOneCallAreEachApplied(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue((0..<4).map { TaskSpec(name: "t\($0)", runAt: at(0)) })
        let claimed = try await f.store.claimDue()
        #expect(claimed.count == 4)
        let applied = try await f.store.complete([
            claimed[0].completing(.succeeded(result: "1"), at: at(1)),
            claimed[1].completing(.dead(outcome: .failed, error: "x"), at: at(1)),
            claimed[2].completing(.retry(outcome: .failed, error: "y", runAt: at(60)), at: at(1)),
            claimed[3].completing(.cancelled(reason: "z"), at: at(1)),
        ])
        #expect(applied == [true, true, true, true])
        #expect(try await f.store.states(claimed.map(\.id)) == [.succeeded, .dead, .scheduled, .cancelled])
        #expect(try await f.store.complete([]) == [])
    }

    @Test(arguments: StoreKind.all)
    func aTurnRecordsItsEndsBeforeItClaims(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0))).id
        let claimed = try await f.store.claimOne(now: at(0))
        // The retry is due at once: the same turn's claim takes it again, as attempt 2.
        let turn = try await f.store.completeAndClaim([claimed.completing(.retry(outcome: .failed, error: "e", runAt: at(5)), at: at(5))],
                                                      [ClaimRequest(queue: "default", names: nil, limit: 10)],
                                                      worker: "w1", leaseUntil: at(60), now: at(5))
        #expect(turn.applied == [true])
        #expect(turn.claimed.map(\.id) == [id])
        #expect(turn.claimed.first?.attempt == 2)
        #expect(!turn.filled)
        #expect(try await f.store.existing(id).state == .running)
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.failed])
    }

    /// A cancel requested while the attempt ran is not lost when the attempt ends in a retry or a hand-back.
    @Test(arguments: StoreKind.all, ["retry", "handBack"])
    func aCancelRequestSurvivesAFailedOrHandedBackAttempt(_ kind: StoreKind, _ end: String) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 5)).id
        let claimed = try await f.store.claimOne(now: at(0))
        #expect(try await f.store.cancel([id], now: at(1)) == [id: .requested])
        let resolution: Completion.Resolution = end == "retry"
            ? .retry(outcome: .failed, error: "boom", runAt: at(2)) : .handBack(reason: "shutting down")
        #expect(try await f.store.complete([claimed.completing(resolution, at: at(2))]) == [true])
        let task = try await f.store.existing(id)
        #expect(task.state == .cancelled)
        #expect(task.finishedAt == at(2))
        #expect(try await f.store.attempts(of: id).count == 1)
        #expect(try await f.store.claimDue(worker: "w2", now: at(100)).isEmpty)
    }

    // MARK: Fencing

    @Test(arguments: StoreKind.all)
    func anEndFromAnotherWorkerIsRefusedAndRecordsNothing(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0))).id
        let claimed = try await f.store.claimOne(worker: "w1", now: at(0))
        let before = try await f.store.snapshot()
        for resolution: Completion.Resolution in [.succeeded(result: "1"), .dead(outcome: .failed, error: "x"),
                                                  .retry(outcome: .failed, error: "y", runAt: at(1)), .cancelled(reason: "z"),
                                                  .handBack(reason: "bye")] {
            #expect(try await f.store.complete([claimed.completing(resolution, worker: "w2", at: at(1))]) == [false], "\(resolution)")
        }
        #expect(try await f.store.snapshot() == before)
        #expect(try await f.store.existing(id).leaseOwner == "w1")
    }

    @Test(arguments: StoreKind.all)
    func anEndOfAnotherAttemptIsRefusedAndRecordsNothing(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0)))
        let claimed = try await f.store.claimOne(now: at(0))
        let before = try await f.store.snapshot()
        var stale = claimed.completing(.succeeded(result: "1"), at: at(1))
        stale.attempt = claimed.attempt + 1
        #expect(try await f.store.complete([stale]) == [false])
        stale.attempt = claimed.attempt - 1
        #expect(try await f.store.complete([stale]) == [false])
        stale.resolution = .dead(outcome: .failed, error: "x")
        #expect(try await f.store.complete([stale]) == [false])
        #expect(try await f.store.snapshot() == before)
    }

    @Test(arguments: StoreKind.all)
    func anEndAfterTheLeaseWasRecoveredIsRefusedAndRecordsNothing(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 5)).id
        let claimed = try await f.store.claimOne(leaseUntil: at(10), now: at(0))
        #expect(try await f.store.recoverExpiredLeases(now: at(11)) == [id])
        let afterRecovery = try await f.store.snapshot()
        #expect(try await f.store.complete([claimed.completing(.succeeded(result: "1"), at: at(12))]) == [false])
        #expect(try await f.store.complete([claimed.completing(.dead(outcome: .failed, error: "x"), at: at(12))]) == [false])
        #expect(try await f.store.snapshot() == afterRecovery)

        // Claimed again by another worker: the first worker's end of the old attempt is still refused.
        let reclaimed = try await f.store.claimOne(worker: "w2", now: at(12))
        #expect(reclaimed.attempt == 2)
        let afterReclaim = try await f.store.snapshot()
        #expect(try await f.store.complete([claimed.completing(.succeeded(result: "1"), worker: "w1", at: at(13))]) == [false])
        #expect(try await f.store.snapshot() == afterReclaim)
        #expect(try await f.store.complete([reclaimed.completing(.succeeded(result: "2"), worker: "w2", at: at(13))]) == [true])
        #expect(try await f.store.existing(id).result == "2")
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.lost, .succeeded])
    }

    @Test(arguments: StoreKind.all)
    func ofTwoEndsOfOneAttemptInOneTurnTheFirstApplies(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let ids = try await f.store.enqueue([TaskSpec(name: "a", runAt: at(0)), TaskSpec(name: "b", runAt: at(0))]).map(\.id)
        let a = try await f.store.claimOne(names: ["a"], now: at(0))
        let b = try await f.store.claimOne(names: ["b"], now: at(0))
        let applied = try await f.store.complete([
            a.completing(.succeeded(result: "1"), at: at(1)), a.completing(.dead(outcome: .failed, error: "late"), at: at(2)),
            b.completing(.dead(outcome: .failed, error: "first"), at: at(1)), b.completing(.succeeded(result: "late"), at: at(2)),
        ])
        #expect(applied == [true, false, true, false])
        #expect(try await f.store.existing(ids[0]).state == .succeeded)
        #expect(try await f.store.existing(ids[0]).result == "1")
        #expect(try await f.store.existing(ids[1]).state == .dead)
        #expect(try await f.store.existing(ids[1]).result == nil)
        #expect(try await f.store.attempts(of: ids[0]).count == 1)
        #expect(try await f.store.attempts(of: ids[1]).count == 1)
        // And in a later call, the attempt has ended already.
        #expect(try await f.store.complete([a.completing(.succeeded(result: "2"), at: at(3))]) == [false])
        #expect(try await f.store.existing(ids[0]).result == "1")
    }

    @Test(arguments: StoreKind.all)
    func anEndOfAFinishedRetriedOrMissingTaskIsRefused(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0))).id
        let claimed = try await f.store.claimOne(now: at(0))
        #expect(try await f.store.complete([claimed.completing(.dead(outcome: .failed, error: "x"), at: at(1))]) == [true])
        #expect(try await f.store.complete([claimed.completing(.succeeded(result: "1"), at: at(1))]) == [false])
        _ = try await f.store.retry([id], now: at(2))
        let before = try await f.store.snapshot()
        // Scheduled again (not running): the old attempt's end is refused.
        #expect(try await f.store.complete([claimed.completing(.succeeded(result: "1"), at: at(3))]) == [false])
        var missing = claimed.completing(.succeeded(result: "1"), at: at(3))
        missing.taskID = id + 1_000
        #expect(try await f.store.complete([missing]) == [false])
        #expect(try await f.store.snapshot() == before)
    }

    @Test(arguments: StoreKind.all)
    func refusedEndsDoNotStopTheOthersOfTheTurn(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue((0..<3).map { TaskSpec(name: "t\($0)", runAt: at(0)) })
        let claimed = try await f.store.claimDue()
        let applied = try await f.store.complete([
            claimed[0].completing(.succeeded(result: nil), worker: "someone-else", at: at(1)),
            claimed[1].completing(.succeeded(result: nil), at: at(1)),
            claimed[2].completing(.dead(outcome: .failed, error: "x"), worker: "someone-else", at: at(1)),
        ])
        #expect(applied == [false, true, false])
        #expect(try await f.store.states(claimed.map(\.id)) == [.running, .succeeded, .running])
        #expect(try await f.store.stats(now: at(1)).states[.succeeded] == 1)
    }
}
