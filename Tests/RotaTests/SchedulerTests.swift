import Foundation
import Synchronization
import Testing
@testable import Rota
@testable import RotaSQLiteStore

@Suite("Scheduler")
struct SchedulerTests {
    struct Greeting: Codable, Sendable, Equatable { var name: String }
    struct Reply: Codable, Sendable, Equatable { var text: String }

    @Test(arguments: StoreKind.all) func runsATypedAsyncHandlerAndRecordsItsResult(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("greet") { (payload: Greeting, context) in
            Reply(text: "hello \(payload.name), attempt \(context.attempt)")
        }
        let id = try await scheduler.enqueue("greet", payload: Greeting(name: "ada"))
        try await runUntilEmpty(scheduler)
        let task = try #require(try await scheduler.task(id))
        #expect(task.state == .succeeded)
        #expect(task.result == #"{"text":"hello ada, attempt 1"}"#)
        let attempts = try await scheduler.attempts(of: id)
        #expect(attempts.map(\.outcome) == [.succeeded])
    }

    /// `onServing` hooks run once, after the worker is registered and before the first task runs (what
    /// `rota run` turns into systemd's READY=1).
    @Test(arguments: StoreKind.all) func servingHooksRunOnceAfterTheWorkerIsRegistered(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        let scheduler = Scheduler(store: store, configuration: testConfiguration(), logger: testLogger)
        let calls = Mutex(0)
        let serving = Event()
        scheduler.onServing {
            calls.withLock { $0 += 1 }
            serving.fulfill()
        }
        let ranAfter = Mutex<Bool?>(nil)
        let ran = Event()
        try scheduler.register("ping") { (_: Empty, _) in
            ranAfter.withLock { $0 = calls.withLock { $0 } == 1 }
            ran.fulfill()
            return Empty()
        }
        let running = RunningScheduler(scheduler)
        try await within(.seconds(600), "the serving hook") { await serving.wait() }
        #expect(try await store.workers().contains { $0.id == scheduler.workerID })
        _ = try await scheduler.enqueue(TaskSpec(name: "ping"))
        try await within(.seconds(600), "the handler") { await ran.wait() }
        try await running.stop()
        #expect(calls.withLock { $0 } == 1)
        #expect(ranAfter.withLock { $0 } == true)
    }

    /// A queue added while the scheduler runs is claimed from its next turn and shows in the worker row;
    /// a concurrency of 0 stops claiming from a queue.
    @Test(arguments: StoreKind.all) func aQueueServedWhileRunningIsClaimedFromAndZeroStopsClaiming(_ kind: StoreKind) async throws {
        let db = try kind.database()
        var configuration = testConfiguration()
        configuration.pollInterval = .seconds(3600)
        configuration.queues = ["default": 2]
        let store = try db.store()
        let scheduler = Scheduler(store: store, configuration: configuration, logger: testLogger)
        let ran = Event()
        let marked = Event()
        try scheduler.register("ping") { (_: Empty, _) in ran.fulfill(); return Empty() }
        try scheduler.register("mark") { (_: Empty, _) in marked.fulfill(); return Empty() }
        #expect(throws: RotaError.self) { try scheduler.serve(queue: " ", concurrency: 1) }
        #expect(throws: RotaError.self) { try scheduler.serve(queue: "late", concurrency: -1) }
        let id = try await scheduler.enqueue(TaskSpec(name: "ping", queue: "late")).id
        _ = try await scheduler.enqueue(TaskSpec(name: "mark"))
        let running = RunningScheduler(scheduler)
        // The claim that took the default queue's task saw the late one too, and left it: not a queue it serves.
        try await within(.seconds(600), "the default queue's task") { await marked.wait() }
        #expect(try await store.task(id)?.state == .scheduled)
        #expect(scheduler.servedQueues == ["default": 2])
        try scheduler.serve(queue: "late", concurrency: 3)
        try await within(.seconds(600), "the handler") { await ran.wait() }
        #expect(scheduler.servedQueues == ["default": 2, "late": 3])
        let worker = try await within(.seconds(600), "the worker row") {
            while true {
                if let row = try await store.workers().first(where: { $0.id == scheduler.workerID }), row.queues.contains("late") {
                    return row
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(worker.queues == ["default", "late"])
        #expect(worker.concurrency == 5)

        // 0 stops claiming from a queue: a due task there stays scheduled, one in default still runs.
        try scheduler.serve(queue: "late", concurrency: 0)
        #expect(scheduler.servedQueues == ["default": 2])
        let parked = try await scheduler.enqueue(TaskSpec(name: "ping", queue: "late")).id
        let served = try await scheduler.enqueue(TaskSpec(name: "ping")).id
        try await within(.seconds(600), "the default task") {
            while try await store.task(served)?.state != .succeeded { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(try await store.task(parked)?.state == .scheduled)
        try await running.stop()
    }

    @Test(arguments: StoreKind.all) func aQueueServedBeforeRunIsServedFromTheStart(_ kind: StoreKind) async throws {
        let db = try kind.database()
        var configuration = testConfiguration(untilEmpty: true)
        configuration.queues = ["default": 1]
        let scheduler = Scheduler(store: try db.store(), configuration: configuration, logger: testLogger)
        try scheduler.register("ping") { (_: Empty, _) in Empty() }
        try scheduler.serve(queue: "other", concurrency: 2)
        try scheduler.serve(queue: "default", concurrency: 0)
        #expect(scheduler.servedQueues == ["other": 2])
        let id = try await scheduler.enqueue(TaskSpec(name: "ping", queue: "other")).id
        try await runUntilEmpty(scheduler)
        #expect(try await scheduler.task(id)?.state == .succeeded)
    }

    /// Starts `scheduler` and returns once it is idle on its poll: it has run a first task and flushed it in
    /// the transaction of its next claim (which found nothing), so only a wake-up or a poll makes it claim
    /// again. Waited for through the store, not slept for.
    private func startIdle(_ scheduler: Scheduler, store: any TaskStore) async throws -> RunningScheduler {
        try scheduler.register("first") { (_: Empty, _) in Empty() }
        let first = try await scheduler.enqueue(TaskSpec(name: "first")).id
        let running = RunningScheduler(scheduler)
        try await within(.seconds(600), "the scheduler to go idle") {
            while try await store.task(first)?.state != .succeeded { try await Task.sleep(for: .milliseconds(10)) }
        }
        return running
    }

    /// Returns once the scheduler's loop has turned at least twice more (two heartbeats in its worker row).
    private func twoMoreTurns(_ scheduler: Scheduler, store: any TaskStore) async throws {
        let heartbeat: @Sendable () async throws -> Date = {
            try await store.workers().first { $0.id == scheduler.workerID }?.heartbeatAt ?? .distantPast
        }
        var seen = try await heartbeat()
        for _ in 0..<2 {
            let previous = seen
            try await within(.seconds(600), "a heartbeat") {
                while try await heartbeat() <= previous { try await Task.sleep(for: .milliseconds(10)) }
            }
            seen = try await heartbeat()
        }
    }

    @Test(arguments: StoreKind.all) func anInProcessEnqueueWakesAnIdleSchedulerAtOnce(_ kind: StoreKind) async throws {
        let db = try kind.database()
        var configuration = testConfiguration()
        configuration.pollInterval = .seconds(3600)
        let store = try db.store()
        let scheduler = Scheduler(store: store, configuration: configuration, logger: testLogger)
        let ran = Event()
        try scheduler.register("ping") { (_: Empty, _) in ran.fulfill(); return Empty() }
        let running = try await startIdle(scheduler, store: store)
        try await scheduler.enqueue("ping")
        // The poll is an hour away (and the guard ten minutes): only the wake-up runs it.
        try await within(.seconds(600), "the handler") { await ran.wait() }
        try await running.stop()
    }

    /// Another process's commit (here: another connection) is seen through `PRAGMA data_version` within
    /// the watch interval; with the watch off, only the (hour-long) poll would find the task.
    @Test func aCommitByAnotherConnectionWakesAnIdleSchedulerWithoutWaitingForAPoll() async throws {
        let db = try TempDatabase()
        var configuration = testConfiguration()
        configuration.pollInterval = .seconds(3600)
        configuration.watchInterval = .milliseconds(5)
        let store = try db.store()
        let scheduler = Scheduler(store: store, configuration: configuration, logger: testLogger)
        let ran = Event()
        try scheduler.register("ping") { (_: Empty, _) in ran.fulfill(); return Empty() }
        let running = try await startIdle(scheduler, store: store)
        let other = try db.store()
        _ = try other.enqueueSync([TaskSpec(name: "ping")])
        try await within(.seconds(600), "the handler") { await ran.wait() }
        try await running.stop()

        // The control: the watch off, the same commit is not seen (the poll is an hour away), however many
        // turns the loop takes.
        configuration.watchInterval = nil
        let unwatched = Scheduler(store: try db.store(), configuration: configuration, logger: testLogger)
        let ranAgain = Event()
        try unwatched.register("ping") { (_: Empty, _) in ranAgain.fulfill(); return Empty() }
        let runningAgain = try await startIdle(unwatched, store: store)
        let id = try other.enqueueSync([TaskSpec(name: "ping")])[0].id
        try await twoMoreTurns(unwatched, store: store)
        #expect(!ranAgain.isFulfilled)
        #expect(try await other.task(id)?.state == .scheduled)
        try await runningAgain.stop()
    }

    @Test(arguments: StoreKind.all) func aTaskDueLaterRunsWhenItsRunAtArrivesWithoutWaitingForAPoll(_ kind: StoreKind) async throws {
        let db = try kind.database()
        var configuration = testConfiguration()
        configuration.pollInterval = .seconds(3600)
        let scheduler = Scheduler(store: try db.store(), configuration: configuration, logger: testLogger)
        let ran = Event()
        let startedAt = Mutex<Date?>(nil)
        try scheduler.register("later") { (_: Empty, _) in
            startedAt.withLock { $0 = Date() }
            ran.fulfill()
            return Empty()
        }
        let running = RunningScheduler(scheduler)
        let enqueuedAt = Date()
        try await scheduler.enqueue("later", after: .milliseconds(300))
        // The poll is an hour away (and the guard ten minutes): only the run_at timer runs it.
        try await within(.seconds(600), "the delayed handler") { await ran.wait() }
        let delay = try #require(startedAt.withLock { $0 }).timeIntervalSince(enqueuedAt)
        #expect(delay >= 0.298)  // never before it is due (run_at is kept to the millisecond)
        try await running.stop()
    }

    /// The first three handlers wait for each other (so three run at once however the machine schedules
    /// them); the limit keeps it at three.
    @Test(arguments: StoreKind.all) func asyncHandlersRunConcurrentlyUpToTheQueueLimitAndNoFurther(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(queues: ["default": 3], untilEmpty: true),
                                  logger: testLogger)
        let gauge = ConcurrencyGauge()
        let threeInside = Event(count: 3)
        try scheduler.register("work") { (_: Empty, _) in
            gauge.enter()
            defer { gauge.leave() }
            threeInside.fulfill()
            await threeInside.wait()
            try await Task.sleep(for: .milliseconds(30))  // a chance for a fourth to (wrongly) start
            return Empty()
        }
        for _ in 0..<15 { try await scheduler.enqueue("work") }
        try await runUntilEmpty(scheduler)
        #expect(gauge.total == 15)
        #expect(gauge.peak == 3)
    }

    @Test(arguments: StoreKind.all) func eachQueueHasItsOwnConcurrency(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(queues: ["a": 1, "b": 4], untilEmpty: true),
                                  logger: testLogger)
        let gaugeA = ConcurrencyGauge()
        let gaugeB = ConcurrencyGauge()
        let fourInB = Event(count: 4)
        try scheduler.register("work") { (payload: String, _) in
            let gauge = payload == "a" ? gaugeA : gaugeB
            gauge.enter()
            defer { gauge.leave() }
            if payload == "b" {
                fourInB.fulfill()
                await fourInB.wait()  // the first four of b run together, whatever the machine's load
            }
            try await Task.sleep(for: .milliseconds(30))
            return Empty()
        }
        for _ in 0..<6 {
            try await scheduler.enqueue("work", payload: "a", queue: "a")
            try await scheduler.enqueue("work", payload: "b", queue: "b")
        }
        try await runUntilEmpty(scheduler)
        #expect(gaugeA.total == 6 && gaugeB.total == 6)
        #expect(gaugeA.peak == 1)
        #expect(gaugeB.peak == 4)
    }

    @Test(arguments: StoreKind.all) func aPayloadThatCannotBeDecodedKillsTheTaskWithAReadableError(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("greet") { (payload: Greeting, _) in Reply(text: payload.name) }
        let id = try await scheduler.enqueue(TaskSpec(name: "greet", payload: #"{"nom":"x"}"#, maxAttempts: 5)).id
        try await runUntilEmpty(scheduler)
        let task = try #require(try await scheduler.task(id))
        #expect(task.state == .dead)
        #expect(task.attempts == 1)
        #expect(task.lastError?.contains("missing key 'name'") == true)
    }

    @Test(arguments: StoreKind.all) func aResultThatCannotBeEncodedFailsTheAttemptAndFollowsTheRetryPolicy(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("nan", retry: .fixed(maxAttempts: 2, delay: .milliseconds(10))) { (_: Empty, _) in Double.nan }
        let id = try await scheduler.enqueue("nan")
        try await runUntilEmpty(scheduler)
        let attempts = try await scheduler.attempts(of: id)
        #expect(attempts.map(\.outcome) == [.failed, .failed])
        #expect(attempts.allSatisfy { $0.error?.contains("cannot be encoded") == true })
        #expect(try await scheduler.task(id)?.state == .dead)
    }

    @Test(arguments: StoreKind.all) func aTaskNameWithoutAHandlerIsNotClaimedAndStaysScheduled(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("known") { (_: Empty, _) in Empty() }
        let known = try await scheduler.enqueue("known")
        let unknown = try await scheduler.enqueue(TaskSpec(name: "unknown")).id
        try await runUntilEmpty(scheduler)
        #expect(try await scheduler.task(known)?.state == .succeeded)
        #expect(try await scheduler.task(unknown)?.state == .scheduled)
        #expect(try await scheduler.task(unknown)?.attempts == 0)
    }

    @Test(arguments: StoreKind.all) func registeringAfterStartIsRefused(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        let scheduler = Scheduler(store: store, configuration: testConfiguration(), logger: testLogger)
        try scheduler.register("a") { (_: Empty, _) in Empty() }
        let running = RunningScheduler(scheduler)
        // It has started once its worker row is written (at the start of run()).
        try await within(.seconds(600), "the scheduler to start") {
            while try await store.workers().first(where: { $0.id == scheduler.workerID }) == nil {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        #expect(throws: RotaError.self) { try scheduler.register("b") { (_: Empty, _) in Empty() } }
        try await running.stop()
    }

    /// The thread pool's threads end when `run()` does, not when the scheduler is released: once it has
    /// returned, the pool refuses work and every thread exits (the scheduler is still referenced here).
    @Test func theThreadPoolShutsDownWhenRunEnds() async throws {
        let db = try TempDatabase()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(threads: 2, untilEmpty: true),
                                  logger: testLogger)
        try scheduler.registerBlocking("block") { (_: Empty, context) in
            try context.checkCancellation()
            return Empty()
        }
        let id = try await scheduler.enqueue("block")
        try await runUntilEmpty(scheduler)
        #expect(try await scheduler.task(id)?.state == .succeeded)
        try await within(.seconds(600), "the thread pool's threads to exit") { await scheduler.pools.threadsStopped() }
        await #expect(throws: CancellationError.self) { try await scheduler.pools.threads.runIfActive { 1 } }
    }

    @Test(arguments: StoreKind.all) func theWorkerIsRegisteredWithItsNamesAndMarkedStoppedAtTheEnd(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        let scheduler = Scheduler(store: store, configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("a") { (_: Empty, _) in Empty() }
        try scheduler.registerExec()
        try await runUntilEmpty(scheduler)
        let worker = try #require(try await store.workers().first { $0.id == scheduler.workerID })
        #expect(worker.taskNames == ["a", "exec"])
        #expect(worker.stoppedAt != nil)
    }
}
