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
        try await within(.seconds(120), "both schedulers to drain") {
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
        try await runUntilEmpty(scheduler, limit: .seconds(20))
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
        try await runUntilEmpty(scheduler, limit: .seconds(20))
        #expect(try await store.attempts(of: id).map(\.outcome) == [.lost, .succeeded])
        #expect(try await store.task(id)?.state == .succeeded)
    }

    @Test(arguments: StoreKind.all) func heartbeatsExtendTheLeasesOfRunningTasks(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        var configuration = testConfiguration()
        configuration.leaseDuration = .milliseconds(400)
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
        try await within(.seconds(5), "the handler") { await started.wait() }
        let firstLease = try #require(try await store.task(id)?.leaseUntil)
        // Outlive the first lease several times over; the heartbeats keep it (and no one recovers it).
        try await Task.sleep(for: .milliseconds(1000))
        let laterLease = try #require(try await store.task(id)?.leaseUntil)
        #expect(laterLease > firstLease.addingTimeInterval(0.5))
        #expect(try await store.task(id)?.state == .running)
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
            try await Task.sleep(for: .seconds(60))
            return Empty()
        }
        let id = try await scheduler.enqueue("long")
        let running = RunningScheduler(scheduler)
        try await within(.seconds(5), "the handler") { await started.wait() }
        #expect(try await store.cancel([id], now: Date()) == [id: .requested])
        try await within(.seconds(5), "the cancel to be recorded") {
            while try await store.task(id)?.state != .cancelled { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(try await store.attempts(of: id).map(\.outcome) == [.cancelled])
        try await running.stop()
    }

    @Test(arguments: StoreKind.all) func gracefulShutdownLetsShortTasksFinishAndHandsLongOnesBack(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        var configuration = testConfiguration(queues: ["default": 4])
        configuration.shutdownGrace = .milliseconds(300)
        let scheduler = Scheduler(store: try db.store(), configuration: configuration, logger: testLogger)
        let started = Event(count: 2)
        let finishShort = Event()
        try scheduler.register("short") { (_: Empty, _) in
            started.fulfill()
            await finishShort.wait()
            return Empty()
        }
        try scheduler.register("long") { (_: Empty, _) in
            started.fulfill()
            try await Task.sleep(for: .seconds(60))
            return Empty()
        }
        let short = try await scheduler.enqueue("short")
        let long = try await scheduler.enqueue("long", maxAttempts: 1)
        try await testGracefulShutdown { trigger in
            let run = Task { try await scheduler.run() }
            try await within(.seconds(5), "both handlers") { await started.wait() }
            trigger.triggerGracefulShutdown()
            try await Task.sleep(for: .milliseconds(20))
            // Stopped claiming: a new due task stays scheduled.
            let late = try await scheduler.enqueue("short")
            finishShort.fulfill()
            try await within(.seconds(10), "the drain") { try await run.value }
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

    @Test(arguments: StoreKind.all) func aSecondShutdownWithNoGraceEndsTheWaitAtOnce(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let store = try db.store()
        var configuration = testConfiguration()
        configuration.shutdownGrace = .seconds(60)
        let scheduler = Scheduler(store: try db.store(), configuration: configuration, logger: testLogger)
        let started = Event()
        try scheduler.register("long") { (_: Empty, _) in
            started.fulfill()
            try await Task.sleep(for: .seconds(60))
            return Empty()
        }
        let id = try await scheduler.enqueue("long")
        let running = RunningScheduler(scheduler)
        try await within(.seconds(5), "the handler") { await started.wait() }
        scheduler.shutdown()                 // 60 s of grace…
        try await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        try await running.stop(grace: .zero) // …cut short by the second request.
        #expect(ContinuousClock.now - start < .seconds(30))  // not the 60 s grace
        #expect(try await store.task(id)?.state == .scheduled)
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
        try await runUntilEmpty(scheduler, limit: .seconds(20))
        try await holder.value
        for id in ids { #expect(try await store.task(id)?.state == .succeeded) }
    }
}
