import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore
import RotaSQLite

/// Tasks in every state, for the operations.
struct EveryState {
    var scheduled: TaskID
    var running: TaskID
    var succeeded: TaskID
    var dead: TaskID
    var cancelled: TaskID

    var all: [TaskID] { [scheduled, running, succeeded, dead, cancelled] }

    /// Enqueues five tasks and moves each to its state; `finishedAt` is when the finished ones ended.
    static func make(_ store: SQLiteTaskStore, queue: String = "default", maxAttempts: Int = 1,
                     finishedAt: Date = instant(0)) async throws -> EveryState {
        let ids = try await store.enqueue((0..<5).map {
            TaskSpec(name: "s\($0)", queue: queue, runAt: instant(-60), maxAttempts: maxAttempts)
        }).map(\.id)
        let claimed = try await store.claimAll(queue, names: ["s1", "s2", "s3", "s4"], now: instant(-1))
        func attempt(_ id: TaskID) throws -> ClaimedTask { try #require(claimed.first { $0.id == id }) }
        let applied = try await store.complete([
            Completion(try attempt(ids[2]), finishedAt: finishedAt, .succeeded(result: "true")),
            Completion(try attempt(ids[3]), finishedAt: finishedAt, .dead(outcome: .failed, error: "boom")),
            Completion(try attempt(ids[4]), finishedAt: finishedAt, .cancelled(reason: "stop")),
        ])
        #expect(applied == [true, true, true])
        return EveryState(scheduled: ids[0], running: ids[1], succeeded: ids[2], dead: ids[3], cancelled: ids[4])
    }
}

@Suite("SQLiteTaskStore: cancel, retry, purge")
struct SQLiteTaskStoreOperationsTests {
    @Test func cancelActsByState() async throws {
        let f = try StoreFixture()
        let s = try await EveryState.make(f.store)
        let now = instant(5)
        let outcomes = try await f.store.cancel(s.all + [424_242], now: now)
        #expect(outcomes == [
            s.scheduled: .cancelled,
            s.running: .requested,
            s.succeeded: .notCancellable(.succeeded),
            s.dead: .notCancellable(.dead),
            s.cancelled: .notCancellable(.cancelled),
            424_242: .notFound,
        ])
        let cancelled = try await f.store.record(s.scheduled)
        #expect(cancelled.state == .cancelled)
        #expect(cancelled.finishedAt == now)
        #expect(try await f.store.attempts(of: s.scheduled).isEmpty)
        let running = try await f.store.record(s.running)
        #expect(running.state == .running)
        #expect(running.cancelRequested)
        #expect(try await f.store.record(s.succeeded).state == .succeeded)
        #expect(try await f.store.record(s.dead).state == .dead)
        // A cancelled task is never claimed.
        #expect(try await f.store.claimAll(now: instant(100)).isEmpty)
    }

    @Test func cancelOfFinishedTasksChangesNothing() async throws {
        let f = try StoreFixture()
        let s = try await EveryState.make(f.store)
        let before = try f.dump()
        _ = try await f.store.cancel([s.succeeded, s.dead, s.cancelled, 77], now: instant(5))
        #expect(try f.dump() == before)
    }

    @Test func cancelRequestedThenCompletedCancelled() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job")).id
        let claimed = try #require(try await f.store.claimAll(now: instant(0)).first)
        #expect(try await f.store.cancel([id], now: instant(1)) == [id: .requested])
        #expect(try await f.store.heartbeat(worker: "w1", now: instant(2), leaseUntil: instant(30)) == [id])
        #expect(try await f.store.complete([Completion(claimed, .cancelled(reason: "cancelled by request"))]) == [true])
        #expect(try await f.store.record(id).state == .cancelled)
    }

    /// A cancel requested while the attempt ran must not be lost when the attempt ends in a retry or a hand-back.
    @Test(arguments: ["retry", "handBack"])
    func cancelRequestSurvivesAFailedOrHandedBackAttempt(_ kind: String) async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", maxAttempts: 5)).id
        let claimed = try #require(try await f.store.claimAll(now: instant(0)).first)
        #expect(try await f.store.cancel([id], now: instant(1)) == [id: .requested])
        let finished = instant(2)
        let resolution: Completion.Resolution = kind == "retry"
            ? .retry(outcome: .failed, error: "boom", runAt: finished) : .handBack(reason: "shutting down")
        #expect(try await f.store.complete([Completion(claimed, finishedAt: finished, resolution)]) == [true])
        let task = try await f.store.record(id)
        #expect(task.state == .cancelled)
        #expect(task.finishedAt == finished)
        #expect(try await f.store.attempts(of: id).count == 1)
        #expect(try await f.store.claimAll(worker: "w2", now: instant(100)).isEmpty)
    }

    @Test func retryReschedulesDeadAndCancelledOnly() async throws {
        let f = try StoreFixture()
        let s = try await EveryState.make(f.store, maxAttempts: 1)
        let unchanged = try await [s.scheduled, s.running, s.succeeded].asyncMap { try await f.store.record($0) }
        let now = instant(10)
        let outcomes = try await f.store.retry(s.all + [31_337], now: now)
        #expect(outcomes == [
            s.scheduled: .notRetryable(.scheduled),
            s.running: .notRetryable(.running),
            s.succeeded: .notRetryable(.succeeded),
            s.dead: .rescheduled,
            s.cancelled: .rescheduled,
            31_337: .notFound,
        ])
        #expect(try await [s.scheduled, s.running, s.succeeded].asyncMap { try await f.store.record($0) } == unchanged)
        for id in [s.dead, s.cancelled] {
            let task = try await f.store.record(id)
            #expect(task.state == .scheduled)
            #expect(task.runAt == now)
            #expect(task.finishedAt == nil)
            #expect(task.attempts == 1)
            #expect(task.maxAttempts == 2) // raised so one more attempt is allowed
            #expect(task.cancelRequested == false)
        }
        let claimed = try await f.store.claimAll(names: ["s3", "s4"], now: now)
        #expect(Set(claimed.map(\.id)) == [s.dead, s.cancelled])
        #expect(claimed.allSatisfy { $0.attempt == 2 && $0.maxAttempts == 2 })
    }

    @Test func retryKeepsAMaxAttemptsThatStillAllowsAnAttempt() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", maxAttempts: 5)).id
        let claimed = try #require(try await f.store.claimAll(now: instant(0)).first)
        _ = try await f.store.complete([Completion(claimed, .dead(outcome: .failed, error: "do not retry"))])
        #expect(try await f.store.retry([id], now: instant(1)) == [id: .rescheduled])
        #expect(try await f.store.record(id).maxAttempts == 5)
    }

    @Test func retryOfACancelledNeverRunTask() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", maxAttempts: 1)).id
        _ = try await f.store.cancel([id], now: instant(0))
        #expect(try await f.store.retry([id], now: instant(1)) == [id: .rescheduled])
        let task = try await f.store.record(id)
        #expect(task.state == .scheduled && task.attempts == 0 && task.maxAttempts == 1)
    }

    @Test func retryAllReschedulesOneStateOptionallyInOneQueue() async throws {
        let f = try StoreFixture()
        let a = try await EveryState.make(f.store, queue: "a")
        let b = try await EveryState.make(f.store, queue: "b")
        let now = instant(10)
        #expect(try await f.store.retryAll(state: .dead, queue: "a", now: now) == 1)
        #expect(try await f.store.record(a.dead).state == .scheduled)
        #expect(try await f.store.record(b.dead).state == .dead)
        #expect(try await f.store.record(a.cancelled).state == .cancelled)

        #expect(try await f.store.retryAll(state: .cancelled, queue: nil, now: now) == 2)
        #expect(try await f.store.record(a.cancelled).state == .scheduled)
        #expect(try await f.store.record(b.cancelled).state == .scheduled)
        #expect(try await f.store.record(b.cancelled).maxAttempts == 2)
        #expect(try await f.store.record(b.dead).state == .dead)
        #expect(try await f.store.record(a.succeeded).state == .succeeded)
        #expect(try await f.store.record(b.succeeded).state == .succeeded)
        #expect(try await f.store.retryAll(state: .dead, queue: "nope", now: now) == 0)
    }

    @Test func purgeDeletesOnlyFinishedTasksBeforeTheCutoffWithTheirAttempts() async throws {
        let f = try StoreFixture()
        let old = try await EveryState.make(f.store, finishedAt: instant(-7200))
        let recent = try await EveryState.make(f.store, finishedAt: instant(-60))
        #expect(try f.dump().count("attempts") == 6)
        let cutoff = instant(-3600)
        #expect(try await f.store.purge(olderThan: cutoff, states: []) == 3)
        for id in [old.succeeded, old.dead, old.cancelled] {
            #expect(try await f.store.task(id) == nil)
            #expect(try await f.store.attempts(of: id).isEmpty)
        }
        for id in [old.scheduled, old.running] + recent.all {
            #expect(try await f.store.task(id) != nil)
        }
        let dump = try f.dump()
        #expect(dump.count("tasks") == 7)
        #expect(dump.count("attempts") == 3) // cascade-deleted, no orphans
        let orphans = try f.store.withConnection { db in
            try db.scalarInt("SELECT count(*) FROM attempts WHERE task_id NOT IN (SELECT id FROM tasks)")
        }
        #expect(orphans == 0)
    }

    @Test func purgeByStateLeavesOtherStates() async throws {
        let f = try StoreFixture()
        let s = try await EveryState.make(f.store, finishedAt: instant(-7200))
        #expect(try await f.store.purge(olderThan: instant(0), states: [.dead]) == 1)
        #expect(try await f.store.task(s.dead) == nil)
        #expect(try await f.store.task(s.succeeded) != nil)
        #expect(try await f.store.task(s.cancelled) != nil)
        #expect(try await f.store.purge(olderThan: instant(0), states: [.succeeded, .cancelled]) == 2)
        #expect(try f.dump().count("tasks") == 2)
    }

    @Test func purgeNeverTouchesScheduledOrRunningTasks() async throws {
        let f = try StoreFixture()
        let s = try await EveryState.make(f.store, finishedAt: instant(-7200))
        // Retried: scheduled again, though it once finished long ago.
        _ = try await f.store.retry([s.dead], now: instant(-7000))
        #expect(try await f.store.purge(olderThan: instant(3600), states: []) == 2)
        let left = try await f.store.list(TaskFilter()).map(\.id)
        #expect(Set(left) == [s.scheduled, s.running, s.dead])
        let before = try f.dump()
        for states in [[TaskState.scheduled], [.running], [.succeeded, .running]] {
            let error = await rotaError { _ = try await f.store.purge(olderThan: instant(3600), states: states) }
            #expect(error?.code == .invalidInput)
        }
        #expect(try f.dump() == before)
    }
}
