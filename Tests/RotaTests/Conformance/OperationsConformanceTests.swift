import Foundation
import Testing
@testable import Rota

@Suite("Store conformance: cancel, retry and purge")
struct OperationsConformanceTests {
    // MARK: Cancel

    @Test(arguments: StoreKind.all)
    func aCancelActsByTheTasksState(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let s = try await TasksInEveryState.make(f.store)
        let unknown = s.all.max()! + 1_000
        let outcomes = try await f.store.cancel(s.all + [unknown], now: at(5))
        #expect(outcomes == [
            s.scheduled: .cancelled,
            s.running: .requested,
            s.succeeded: .notCancellable(.succeeded),
            s.dead: .notCancellable(.dead),
            s.cancelled: .notCancellable(.cancelled),
            unknown: .notFound,
        ])
        let cancelled = try await f.store.existing(s.scheduled)
        #expect(cancelled.state == .cancelled)
        #expect(cancelled.finishedAt == at(5))
        #expect(try await f.store.attempts(of: s.scheduled).isEmpty)
        let running = try await f.store.existing(s.running)
        #expect(running.state == .running)
        #expect(running.cancelRequested)
        #expect(running.leaseOwner == "w1")
        #expect(try await f.store.existing(s.succeeded).state == .succeeded)
        #expect(try await f.store.existing(s.dead).state == .dead)
        // A cancelled task is never claimed.
        #expect(try await f.store.claimDue(now: at(100)).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func aCancelOfFinishedOrUnknownTasksChangesNothing(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let s = try await TasksInEveryState.make(f.store)
        let before = try await f.store.snapshot()
        _ = try await f.store.cancel(s.finished + [s.all.max()! + 1_000], now: at(5))
        #expect(try await f.store.snapshot() == before)
    }

    @Test(arguments: StoreKind.all)
    func aRunningTaskAskedToStopIsCancelledByItsWorkersEnd(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0))).id
        let claimed = try await f.store.claimOne(now: at(0))
        #expect(try await f.store.cancel([id], now: at(1)) == [id: .requested])
        // Asking again is the same answer.
        #expect(try await f.store.cancel([id], now: at(1.5)) == [id: .requested])
        #expect(try await f.store.heartbeat(worker: "w1", now: at(2), leaseUntil: at(30)) == [id])
        #expect(try await f.store.complete([claimed.completing(.cancelled(reason: "cancelled by request"), at: at(3))]) == [true])
        let task = try await f.store.existing(id)
        #expect(task.state == .cancelled)
        #expect(task.finishedAt == at(3))
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.cancelled])
        #expect(try await f.store.cancel([id], now: at(4)) == [id: .notCancellable(.cancelled)])
    }

    @Test(arguments: StoreKind.all)
    func aRunningTaskAskedToStopThatSucceedsAnywayIsSucceeded(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0))).id
        let claimed = try await f.store.claimOne(now: at(0))
        #expect(try await f.store.cancel([id], now: at(1)) == [id: .requested])
        #expect(try await f.store.complete([claimed.completing(.succeeded(result: "1"), at: at(2))]) == [true])
        #expect(try await f.store.existing(id).state == .succeeded)
    }

    // MARK: Retry

    @Test(arguments: StoreKind.all)
    func aRetryReschedulesDeadAndCancelledTasksOnly(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let s = try await TasksInEveryState.make(f.store, maxAttempts: 1)
        var unchanged: [TaskRecord] = []
        for id in [s.scheduled, s.running, s.succeeded] { unchanged.append(try await f.store.existing(id)) }
        let unknown = s.all.max()! + 1_000
        let outcomes = try await f.store.retry(s.all + [unknown], now: at(10))
        #expect(outcomes == [
            s.scheduled: .notRetryable(.scheduled),
            s.running: .notRetryable(.running),
            s.succeeded: .notRetryable(.succeeded),
            s.dead: .rescheduled,
            s.cancelled: .rescheduled,
            unknown: .notFound,
        ])
        var after: [TaskRecord] = []
        for id in [s.scheduled, s.running, s.succeeded] { after.append(try await f.store.existing(id)) }
        #expect(after == unchanged)
        for id in [s.dead, s.cancelled] {
            let task = try await f.store.existing(id)
            #expect(task.state == .scheduled)
            #expect(task.runAt == at(10))
            #expect(task.finishedAt == nil)
            #expect(task.attempts == 1)
            #expect(task.maxAttempts == 2)  // raised so one more attempt is allowed
            #expect(task.cancelRequested == false)
            #expect(try await f.store.attempts(of: id).count == 1)  // its history stays
        }
        let claimed = try await f.store.claimDue(names: ["s3", "s4"], now: at(10))
        #expect(Set(claimed.map(\.id)) == [s.dead, s.cancelled])
        #expect(claimed.allSatisfy { $0.attempt == 2 && $0.maxAttempts == 2 })
    }

    @Test(arguments: StoreKind.all)
    func aRetryKeepsAMaxAttemptsThatStillAllowsAnAttempt(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 5)).id
        let claimed = try await f.store.claimOne(now: at(0))
        _ = try await f.store.complete([claimed.completing(.dead(outcome: .failed, error: "do not retry"), at: at(1))])
        #expect(try await f.store.retry([id], now: at(2)) == [id: .rescheduled])
        #expect(try await f.store.existing(id).maxAttempts == 5)
    }

    @Test(arguments: StoreKind.all)
    func aRetryOfACancelledTaskThatNeverRanKeepsItsAttempts(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 1)).id
        _ = try await f.store.cancel([id], now: at(0))
        #expect(try await f.store.retry([id], now: at(1)) == [id: .rescheduled])
        let task = try await f.store.existing(id)
        #expect(task.state == .scheduled && task.attempts == 0 && task.maxAttempts == 1 && task.runAt == at(1))
        #expect(try await f.store.claimOne(now: at(1)).attempt == 1)
    }

    @Test(arguments: StoreKind.all)
    func retryAllReschedulesOneStateOptionallyInOneQueue(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let a = try await TasksInEveryState.make(f.store, queue: "a")
        let b = try await TasksInEveryState.make(f.store, queue: "b")
        #expect(try await f.store.retryAll(state: .dead, queue: "a", now: at(10)) == 1)
        #expect(try await f.store.existing(a.dead).state == .scheduled)
        #expect(try await f.store.existing(a.dead).runAt == at(10))
        #expect(try await f.store.existing(b.dead).state == .dead)
        #expect(try await f.store.existing(a.cancelled).state == .cancelled)

        #expect(try await f.store.retryAll(state: .cancelled, queue: nil, now: at(10)) == 2)
        #expect(try await f.store.existing(a.cancelled).state == .scheduled)
        #expect(try await f.store.existing(b.cancelled).state == .scheduled)
        #expect(try await f.store.existing(b.cancelled).maxAttempts == 2)
        #expect(try await f.store.existing(b.dead).state == .dead)
        #expect(try await f.store.existing(a.succeeded).state == .succeeded)
        #expect(try await f.store.existing(b.succeeded).state == .succeeded)
        #expect(try await f.store.retryAll(state: .dead, queue: "nope", now: at(10)) == 0)
        #expect(try await f.store.retryAll(state: .dead, queue: "a", now: at(10)) == 0)
    }

    @Test(arguments: StoreKind.all)
    func retryAllAndPurgeRefuseStatesThatAreNotFinished(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await TasksInEveryState.make(f.store, finishedAt: at(-7200))
        let before = try await f.store.snapshot()
        for state in [TaskState.scheduled, .running, .succeeded] {
            let error = try #require(await rotaError { _ = try await f.store.retryAll(state: state, queue: nil, now: at(0)) })
            #expect(error.code == .invalidInput)
            #expect(error.field == "state")
        }
        for states in [[TaskState.scheduled], [.running], [.succeeded, .running]] {
            let error = try #require(await rotaError { _ = try await f.store.purge(olderThan: at(3600), states: states) })
            #expect(error.code == .invalidInput)
            #expect(error.field == "state")
        }
        #expect(try await f.store.snapshot() == before)
    }

    // MARK: Purge

    @Test(arguments: StoreKind.all)
    func aPurgeDeletesOnlyTasksFinishedBeforeTheCutoffWithTheirAttempts(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let old = try await TasksInEveryState.make(f.store, finishedAt: at(-7200))
        let recent = try await TasksInEveryState.make(f.store, finishedAt: at(-60))
        let edge = try await TasksInEveryState.make(f.store, finishedAt: at(-3600))
        #expect(try await f.store.purge(olderThan: at(-3600), states: []) == 3)
        for id in old.finished {
            #expect(try await f.store.task(id) == nil)
            #expect(try await f.store.attempts(of: id).isEmpty)
        }
        // Finished exactly at the cutoff is not older than it.
        for id in [old.scheduled, old.running] + recent.all + edge.all {
            #expect(try await f.store.task(id) != nil)
        }
        for id in recent.finished + edge.finished {
            #expect(try await f.store.attempts(of: id).count == 1)
        }
        #expect(try await f.store.allTasks().count == 12)
        #expect(try await f.store.nonZeroStates() == [.scheduled: 3, .running: 3, .succeeded: 2, .dead: 2, .cancelled: 2])
    }

    @Test(arguments: StoreKind.all)
    func aPurgeOfSomeStatesLeavesTheOthers(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let s = try await TasksInEveryState.make(f.store, finishedAt: at(-7200))
        #expect(try await f.store.purge(olderThan: at(0), states: [.dead]) == 1)
        #expect(try await f.store.task(s.dead) == nil)
        #expect(try await f.store.task(s.succeeded) != nil)
        #expect(try await f.store.task(s.cancelled) != nil)
        #expect(try await f.store.purge(olderThan: at(0), states: [.succeeded, .cancelled]) == 2)
        #expect(Set(try await f.store.allTasks().map(\.id)) == [s.scheduled, s.running])
        #expect(try await f.store.purge(olderThan: at(0), states: []) == 0)
    }

    @Test(arguments: StoreKind.all)
    func aPurgeNeverTouchesScheduledOrRunningTasks(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let s = try await TasksInEveryState.make(f.store, finishedAt: at(-7200))
        // Retried: scheduled again, though it once finished long ago.
        _ = try await f.store.retry([s.dead], now: at(-7000))
        let kept = try await [s.scheduled, s.running, s.dead].asyncMap { try await f.store.existing($0) }
        #expect(try await f.store.purge(olderThan: at(3600), states: []) == 2)
        #expect(Set(try await f.store.allTasks().map(\.id)) == [s.scheduled, s.running, s.dead])
        #expect(try await [s.scheduled, s.running, s.dead].asyncMap { try await f.store.existing($0) } == kept)
        #expect(try await f.store.attempts(of: s.dead).count == 1)
    }
}
