import Foundation
import Synchronization
import Testing
@testable import Rota
@testable import RotaSQLiteStore

@Suite("Scheduler retries and timeouts")
struct SchedulerRetryTests {
    struct Boom: Error, CustomStringConvertible {
        var attempt: Int
        var description: String { "boom on attempt \(attempt)" }
    }

    /// Each retry is scheduled (its `run_at`, read by the handler when it runs) within the policy's cap after
    /// the failure, and runs no sooner than that. When it actually starts after being due depends on the
    /// machine's load, so that is not bounded here.
    @Test(arguments: StoreKind.all) func failuresRetryWithBackoffAndStopAtMaxAttemptsKeepingEveryError(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        let policy = RetryPolicy.exponentialJitter(maxAttempts: 4, base: .milliseconds(50), maxBackoff: .milliseconds(120))
        let dueAt = Mutex<[Int: Date]>([:])
        try scheduler.register("flaky", retry: policy) { (_: Empty, context) -> Empty in
            let runAt = try await store.task(context.taskID)?.runAt
            dueAt.withLock { $0[context.attempt] = runAt }
            throw Boom(attempt: context.attempt)
        }
        let id = try await scheduler.enqueue("flaky")
        try await runUntilEmpty(scheduler)
        let task = try #require(try await scheduler.task(id))
        #expect(task.state == .dead)
        #expect(task.attempts == 4)
        let attempts = try await scheduler.attempts(of: id)
        #expect(attempts.map(\.attempt) == [1, 2, 3, 4])
        #expect(attempts.map(\.outcome) == [.failed, .failed, .failed, .failed])
        #expect(attempts.map(\.error) == (1...4).map { "boom on attempt \($0)" })
        for (previous, next) in zip(attempts, attempts.dropFirst()) {
            let due = try #require(dueAt.withLock { $0[next.attempt] })
            let started = try #require(next.startedAt)
            let delay = due.timeIntervalSince(previous.finishedAt)
            let cap = policy.maxDelay(afterAttempt: previous.attempt).seconds
            // Instants are kept to the millisecond: allow one either way.
            #expect(delay >= -0.001 && delay <= cap + 0.001, "attempt \(next.attempt) was due \(delay)s after the failure; cap \(cap)s")
            #expect(started >= due.addingTimeInterval(-0.001), "attempt \(next.attempt) started before it was due")
        }
    }

    @Test(arguments: StoreKind.all) func theTasksOwnMaxAttemptsOverridesTheHandlersDefault(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("flaky", retry: .fixed(maxAttempts: 5, delay: .milliseconds(1))) { (_: Empty, context) -> Empty in
            throw Boom(attempt: context.attempt)
        }
        let byDefault = try await scheduler.enqueue("flaky")
        let twice = try await scheduler.enqueue("flaky", maxAttempts: 2)
        try await runUntilEmpty(scheduler)
        #expect(try await scheduler.task(byDefault)?.attempts == 5)
        #expect(try await scheduler.task(twice)?.attempts == 2)
    }

    @Test(arguments: StoreKind.all) func aNonRetryableErrorKillsTheTaskAtOnce(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("strict", retry: .fixed(maxAttempts: 5, delay: .milliseconds(1))) { (_: Empty, _) -> Empty in
            throw NonRetryableError("the account is closed")
        }
        let id = try await scheduler.enqueue("strict")
        try await runUntilEmpty(scheduler)
        let task = try #require(try await scheduler.task(id))
        #expect(task.state == .dead)
        #expect(task.attempts == 1)
        #expect(task.lastError == "the account is closed")
    }

    @Test(arguments: StoreKind.all) func dontRetryKillsTheTaskAtTheFirstFailureWhateverItsMaxAttempts(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("once", retry: .dontRetry) { (_: Empty, context) -> Empty in throw Boom(attempt: context.attempt) }
        let id = try await scheduler.enqueue(TaskSpec(name: "once", maxAttempts: 9)).id
        try await runUntilEmpty(scheduler)
        #expect(try await scheduler.task(id)?.state == .dead)
        #expect(try await scheduler.attempts(of: id).count == 1)
    }

    @Test(arguments: StoreKind.all) func aFailedAttemptThenASuccessEndsSucceeded(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("second-time", retry: .fixed(maxAttempts: 3, delay: .milliseconds(5))) { (_: Empty, context) -> Int in
            if context.attempt == 1 { throw Boom(attempt: 1) }
            return context.attempt
        }
        let id = try await scheduler.enqueue("second-time")
        try await runUntilEmpty(scheduler)
        let task = try #require(try await scheduler.task(id))
        #expect(task.state == .succeeded)
        #expect(task.result == "2")
        #expect(try await scheduler.attempts(of: id).map(\.outcome) == [.failed, .succeeded])
    }

    @Test(arguments: StoreKind.all) func anAsyncHandlerPastItsTimeoutIsCancelledAndTheAttemptTimesOut(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        let sawCancellation = Event()
        try scheduler.register("slow", retry: .dontRetry, timeout: .milliseconds(100)) { (_: Empty, _) -> Empty in
            do { try await Task.sleep(for: .seconds(3600)) } catch { sawCancellation.fulfill(); throw error }
            return Empty()
        }
        let id = try await scheduler.enqueue("slow")
        try await runUntilEmpty(scheduler)  // its guard (600 s) is far shorter than the handler's 3600 s
        #expect(sawCancellation.isFulfilled)
        let attempts = try await scheduler.attempts(of: id)
        #expect(attempts.map(\.outcome) == [.timedOut])
        #expect(attempts.first?.error?.contains("timed out") == true)
        #expect(try await scheduler.task(id)?.state == .dead)
    }

    @Test(arguments: StoreKind.all) func aTaskTimeoutOverridesTheHandlersAndATimedOutAttemptIsRetried(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("slow", retry: .fixed(maxAttempts: 2, delay: .milliseconds(1)), timeout: .seconds(60)) { (_: Empty, _) -> Empty in
            try await Task.sleep(for: .seconds(3600))
            return Empty()
        }
        let id = try await scheduler.enqueue("slow", timeout: .milliseconds(50))
        try await runUntilEmpty(scheduler)
        #expect(try await scheduler.attempts(of: id).map(\.outcome) == [.timedOut, .timedOut])
    }

    @Test(arguments: StoreKind.all) func aBlockingHandlerPastItsTimeoutHasItsResultDiscarded(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        let release = DispatchSemaphore(value: 0)
        let sawFlag = Event()
        try scheduler.registerBlocking("stuck", retry: .dontRetry, timeout: .milliseconds(100)) { (_: Empty, context) -> String in
            // Blocks its thread well past the timeout; the flag tells it the attempt is over.
            while !context.isCancelled { _ = release.wait(timeout: .now() + .milliseconds(5)) }
            sawFlag.fulfill()
            return "too late"
        }
        let id = try await scheduler.enqueue("stuck")
        try await runUntilEmpty(scheduler)
        let attempts = try await scheduler.attempts(of: id)
        #expect(attempts.map(\.outcome) == [.timedOut])
        #expect(attempts.first?.result == nil)
        try await within(.seconds(120), "the blocking handler to see its cancellation") { await sawFlag.wait() }
    }
}
