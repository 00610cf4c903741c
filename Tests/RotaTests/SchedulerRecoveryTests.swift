import Foundation
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing
@testable import Rota
@testable import RotaSQLiteStore

@Suite("Scheduler leases, recovery, cancellation and shutdown")
struct SchedulerRecoveryTests {
    @Test(arguments: StoreKind.all) func twoSchedulersOnOneFileRunEveryTaskExactlyOnce(_ kind: StoreKind) async throws {
        let long = ProcessInfo.processInfo.environment["ROTA_LONG_TESTS"] == "1"
        let count = long ? 50_000 : 5_000
        let db = try kind.database()
        let seen = Mutex<[TaskID: Int]>([:])
        let runs = Mutex(0)
        var schedulers: [Scheduler] = []
        for _ in 0..<2 {
            let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(queues: ["default": 64], untilEmpty: true),
                                      logger: testLogger)
            try scheduler.register("noop") { (_: Empty, context) in
                seen.withLock { $0[context.taskID, default: 0] += 1 }
                runs.withLock { $0 += 1 }
                return Empty()
            }
            schedulers.append(scheduler)
        }
        let specs = (0..<count).map { _ in TaskSpec(name: "noop") }
        _ = try await schedulers[0].enqueue(specs)
        let both = schedulers
        try await within(.seconds(600), "both schedulers to drain") {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for scheduler in both { group.addTask { try await scheduler.run() } }
                try await group.waitForAll()
            }
        }
        #expect(runs.withLock { $0 } == count)
        #expect(seen.withLock { $0.count } == count)
        #expect(seen.withLock { $0.values.allSatisfy { $0 == 1 } })
        let store = try db.store()
        let stats = try await store.stats(now: Date())
        #expect(stats.states[.succeeded] == count)
        // Both took a share (not a requirement of correctness, but shows they competed).
        let workers = try await store.workers()
        #expect(workers.count == 2)
    }

    @Test(arguments: StoreKind.all) func finishedTasksPastTheRetentionArePurgedAtAMaintenanceTick(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        let ids = try await store.enqueue([TaskSpec(name: "job"), TaskSpec(name: "job"), TaskSpec(name: "other")]).map(\.id)
        let claimed = try await store.claim([ClaimRequest(queue: "default", names: ["job"], limit: 2)], worker: "w0",
                                            leaseUntil: Date().addingTimeInterval(3600), now: Date())
        #expect(claimed.count == 2)
        // One finished two days ago, one just now; "other" is never run (no handler for it).
        let twoDaysAgo = Date().addingTimeInterval(-2 * 86_400)
        let ends = claimed.map { task in
            let at = task.id == ids[0] ? twoDaysAgo : Date()
            return Completion(taskID: task.id, attempt: task.attempt, worker: "w0", startedAt: at, finishedAt: at,
                              resolution: .succeeded(result: nil))
        }
        #expect(try await store.complete(ends) == [true, true])
        var configuration = testConfiguration()
        configuration.purgeFinishedAfter = .seconds(86_400)
        let scheduler = Scheduler(store: try db.store(), configuration: configuration, logger: testLogger)
        try scheduler.register("job") { (_: Empty, _) in Empty() }
        let running = RunningScheduler(scheduler)
        try await within(.seconds(600), "the old task to be purged") {
            while try await store.task(ids[0]) != nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        try await running.stop()
        #expect(try await store.task(ids[1])?.state == .succeeded)
        #expect(try await store.task(ids[2])?.state == .scheduled)
        #expect(try await store.attempts(of: ids[0]).isEmpty)
    }

    @Test func tasksOfAWorkerWhoseProcessIsGoneAreReleasedAtStartUp() async throws {
        let db = try TempDatabase()
        let store = try db.store()
        // A pid that certainly has no process: a child that has exited and been reaped.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let deadPid = child.processIdentifier
        let host = ProcessInfo.processInfo.hostName
        let ghost = "\(host):\(deadPid):dead"
        try await store.registerWorker(WorkerRecord(id: ghost, host: host, pid: deadPid, queues: ["default"], taskNames: ["job"],
                                                    concurrency: 1, startedAt: Date(), heartbeatAt: Date()))
        let id = try await store.enqueue(TaskSpec(name: "job")).id
        let claimed = try await store.claim([ClaimRequest(queue: "default", names: ["job"], limit: 1)], worker: ghost,
                                            leaseUntil: Date().addingTimeInterval(3600), now: Date())
        #expect(claimed.map(\.id) == [id])

        var configuration = testConfiguration(untilEmpty: true)
        configuration.recoveryInterval = .seconds(3600)  // only the start-up release can free it
        let scheduler = Scheduler(store: try db.store(), configuration: configuration, logger: testLogger)
        try scheduler.register("job") { (_: Empty, context) in context.attempt }
        try await runUntilEmpty(scheduler)
        let attempts = try await store.attempts(of: id)
        #expect(attempts.map(\.outcome) == [.lost, .succeeded])
        #expect(attempts.first?.error?.contains("gone") == true)
        #expect(try await store.workers().first { $0.id == ghost }?.stoppedAt != nil)
    }

    @Test(arguments: StoreKind.all) func anExpiredLeaseIsRecoveredAndTheTaskRunsAgain(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        let id = try await store.enqueue(TaskSpec(name: "job", maxAttempts: 3)).id
        // Another host's worker claimed it and stopped heartbeating: its lease is over.
        _ = try await store.claim([ClaimRequest(queue: "default", names: nil, limit: 1)], worker: "elsewhere:1:x",
                                  leaseUntil: Date().addingTimeInterval(-1), now: Date())
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("job") { (_: Empty, _) in Empty() }
        try await runUntilEmpty(scheduler)
        #expect(try await store.attempts(of: id).map(\.outcome) == [.lost, .succeeded])
        #expect(try await store.task(id)?.state == .succeeded)
    }

    @Test(arguments: StoreKind.all) func heartbeatsExtendTheLeasesOfRunningTasks(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        var configuration = testConfiguration()
        // Heartbeats every 50 ms; a lease of 5 s (a hundred heartbeats) expires only if they stop.
        configuration.leaseDuration = .seconds(5)
        configuration.heartbeatInterval = .milliseconds(50)
        let scheduler = Scheduler(store: try db.store(), configuration: configuration, logger: testLogger)
        let started = Event()
        let release = Event()
        try scheduler.register("long") { (_: Empty, _) in
            started.fulfill()
            await release.wait()
            return Empty()
        }
        let id = try await scheduler.enqueue("long")
        let running = RunningScheduler(scheduler)
        try await within(.seconds(120), "the handler") { await started.wait() }
        let firstLease = try #require(try await store.task(id)?.leaseUntil)
        // Wait for the heartbeats to have moved the lease on by a second (time must pass for that), then
        // check that the attempt still runs: extended, never recovered (recovery runs every 100 ms).
        let laterLease = try await within(.seconds(120), "the lease to be extended") {
            while true {
                if let lease = try await store.task(id)?.leaseUntil, lease > firstLease.addingTimeInterval(1) { return lease }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(laterLease > firstLease.addingTimeInterval(1))
        #expect(try await store.task(id)?.state == .running)
        #expect(try await store.attempts(of: id).isEmpty)
        release.fulfill()
        try await running.stop()
        #expect(try await store.attempts(of: id).map(\.outcome) == [.succeeded])
    }

    @Test(arguments: StoreKind.all) func aCancelRequestStopsARunningTask(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(), logger: testLogger)
        let started = Event()
        try scheduler.register("long") { (_: Empty, _) in
            started.fulfill()
            try await Task.sleep(for: .seconds(3600))
            return Empty()
        }
        let id = try await scheduler.enqueue("long")
        let running = RunningScheduler(scheduler)
        try await within(.seconds(120), "the handler") { await started.wait() }
        #expect(try await store.cancel([id], now: Date()) == [id: .requested])
        try await within(.seconds(600), "the cancel to be recorded") {
            while try await store.task(id)?.state != .cancelled { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(try await store.attempts(of: id).map(\.outcome) == [.cancelled])
        try await running.stop()
    }

    /// The grace is long here, and ended by a second request once the short task has finished: a short
    /// grace would make the outcome depend on how fast the short task is scheduled.
    @Test(arguments: StoreKind.all) func gracefulShutdownLetsShortTasksFinishAndHandsLongOnesBack(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        var configuration = testConfiguration(queues: ["default": 4])
        configuration.shutdownGrace = .seconds(3600)
        let log = LogRecorder()
        let scheduler = Scheduler(store: try db.store(), configuration: configuration, logger: log.logger)
        let started = Event(count: 2)
        let finishShort = Event()
        try scheduler.register("short") { (_: Empty, _) in
            started.fulfill()
            await finishShort.wait()
            return Empty()
        }
        try scheduler.register("long") { (_: Empty, _) in
            started.fulfill()
            try await Task.sleep(for: .seconds(3600))
            return Empty()
        }
        let short = try await scheduler.enqueue("short")
        let long = try await scheduler.enqueue("long", maxAttempts: 1)
        try await testGracefulShutdown { trigger in
            let run = Task { try await scheduler.run() }
            try await within(.seconds(120), "both handlers") { await started.wait() }
            trigger.triggerGracefulShutdown()
            // Once the loop says it drains it claims no more (a sleep here would only make that likely).
            try await within(.seconds(600), "the loop to begin draining") { await log.wait(for: "scheduler draining") }
            // Stopped claiming: a new due task stays scheduled.
            let late = try await scheduler.enqueue("short")
            finishShort.fulfill()
            try await within(.seconds(600), "the short task to finish within the grace") {
                while try await store.task(short)?.state != .succeeded { try await Task.sleep(for: .milliseconds(10)) }
            }
            scheduler.shutdown(grace: .zero)  // the grace ends: the long task is cancelled and handed back
            try await within(.seconds(600), "the drain") { try await run.value }
            #expect(try await store.task(late)?.state == .scheduled)
        }
        #expect(try await store.task(short)?.state == .succeeded)
        // Handed back: scheduled again, due now, whatever its max attempts, with the attempt recorded.
        let handedBack = try #require(try await store.task(long))
        #expect(handedBack.state == .scheduled)
        #expect(handedBack.runAt <= Date())
        #expect(try await store.attempts(of: long).map(\.outcome) == [.cancelled])
        #expect(try await store.workers().first { $0.id == scheduler.workerID }?.stoppedAt != nil)
    }

    /// An hour of grace, cut short by a second request with none: `run()` returns (well within the guard,
    /// which is no measure: without the second request it would wait the hour).
    @Test(arguments: StoreKind.all) func aSecondShutdownWithNoGraceEndsTheWaitAtOnce(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        var configuration = testConfiguration()
        configuration.shutdownGrace = .seconds(3600)
        let scheduler = Scheduler(store: try db.store(), configuration: configuration, logger: testLogger)
        let started = Event()
        try scheduler.register("long") { (_: Empty, _) in
            started.fulfill()
            try await Task.sleep(for: .seconds(3600))
            return Empty()
        }
        let id = try await scheduler.enqueue("long")
        let running = RunningScheduler(scheduler)
        try await within(.seconds(120), "the handler") { await started.wait() }
        scheduler.shutdown()                 // an hour of grace…
        scheduler.shutdown(grace: .zero)     // …cut short by the second request.
        try await within(.seconds(600), "the scheduler to stop") { try await running.task.value }
        #expect(try await store.task(id)?.state == .scheduled)
        #expect(try await store.attempts(of: id).map(\.outcome) == [.cancelled])
    }

    @Test func aBusyDatabaseIsRetriedNotFatal() async throws {
        let db = try TempDatabase()
        let store = try db.store()
        let blocker = try SQLiteTaskStore(path: db.path, configuration: .init(durability: .normal, busyTimeout: .milliseconds(10), quickCheck: false))
        let scheduler = Scheduler(
            store: try SQLiteTaskStore(path: db.path, configuration: .init(durability: .normal, busyTimeout: .milliseconds(10), quickCheck: false)),
            configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("job") { (_: Empty, _) in Empty() }
        let ids = try await store.enqueue((0..<20).map { _ in TaskSpec(name: "job") }).map(\.id)
        // Hold the write lock for a while: every claim fails with SQLITE_BUSY until it is released.
        let locked = Event()
        let holder = Task.detached {
            try blocker.withConnection { db in
                try db.transaction(.immediate) {
                    locked.fulfill()
                    usleep(400_000)
                }
            }
        }
        await locked.wait()
        try await runUntilEmpty(scheduler)
        try await holder.value
        for id in ids { #expect(try await store.task(id)?.state == .succeeded) }
    }
}
