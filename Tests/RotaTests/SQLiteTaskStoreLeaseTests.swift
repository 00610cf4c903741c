import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore
import RotaSQLite

@Suite("SQLiteTaskStore: workers and leases")
struct SQLiteTaskStoreLeaseTests {
    @Test func heartbeatExtendsOnlyItsWorkersLeases() async throws {
        let f = try StoreFixture()
        let mine = try await f.store.enqueue(TaskSpec(name: "a")).id
        let theirs = try await f.store.enqueue(TaskSpec(name: "b")).id
        let now = instant(0)
        _ = try await f.store.claimAll(names: ["a"], worker: "w1", leaseUntil: instant(10, from: now), now: now)
        _ = try await f.store.claimAll(names: ["b"], worker: "w2", leaseUntil: instant(10, from: now), now: now)
        let extended = instant(40, from: now)
        #expect(try await f.store.heartbeat(worker: "w1", now: instant(5, from: now), leaseUntil: extended) == [])
        #expect(try await f.store.record(mine).leaseUntil == extended)
        #expect(try await f.store.record(theirs).leaseUntil == instant(10, from: now))
        // Extended leases are not recovered; the other worker's expired one is.
        #expect(try await f.store.recoverExpiredLeases(now: instant(20, from: now)) == [theirs])
        #expect(try await f.store.record(mine).state == .running)
    }

    @Test func heartbeatReturnsTheRunningTasksACancelWasRequestedFor() async throws {
        let f = try StoreFixture()
        let ids = try await f.store.enqueue([TaskSpec(name: "a"), TaskSpec(name: "b"), TaskSpec(name: "c")]).map(\.id)
        _ = try await f.store.claimAll(names: ["a", "b"], worker: "w1", now: instant(0))
        let outcomes = try await f.store.cancel([ids[0]], now: instant(1))
        #expect(outcomes == [ids[0]: .requested])
        #expect(try await f.store.heartbeat(worker: "w1", now: instant(2), leaseUntil: instant(30)) == [ids[0]])
        #expect(try await f.store.heartbeat(worker: "w2", now: instant(2), leaseUntil: instant(30)) == [])
        #expect(try await f.store.record(ids[0]).cancelRequested)
        #expect(try await f.store.record(ids[1]).cancelRequested == false)
    }

    @Test func workersRegisterHeartbeatAndStop() async throws {
        let f = try StoreFixture()
        let t0 = instant(-100)
        let w1 = WorkerRecord(id: "host-1-aaa", host: "host", pid: 1, queues: ["default", "mail"], taskNames: ["exec", "email.send"],
                              concurrency: 8, startedAt: t0, heartbeatAt: t0)
        let w2 = WorkerRecord(id: "host-2-bbb", host: "host", pid: 2, queues: ["reports"], taskNames: [],
                              concurrency: 1, startedAt: instant(1, from: t0), heartbeatAt: instant(1, from: t0))
        try await f.store.registerWorker(w1)
        try await f.store.registerWorker(w2)
        #expect(try await f.store.workers() == [w2, w1]) // most recent heartbeat first

        _ = try await f.store.heartbeat(worker: w1.id, now: instant(10, from: t0), leaseUntil: instant(40, from: t0))
        var workers = try await f.store.workers()
        #expect(workers.map(\.id) == [w1.id, w2.id])
        #expect(workers[0].heartbeatAt == instant(10, from: t0))

        try await f.store.stopWorker(w1.id, at: instant(20, from: t0))
        workers = try await f.store.workers()
        #expect(workers[0].id == w1.id)
        #expect(workers[0].stoppedAt == instant(20, from: t0))
        #expect(workers[0].heartbeatAt == instant(20, from: t0))
        #expect(workers[1].stoppedAt == nil)

        // Re-registering the same id clears the stop and updates what it serves.
        var again = w1
        again.queues = ["default"]
        again.concurrency = 2
        again.heartbeatAt = instant(30, from: t0)
        try await f.store.registerWorker(again)
        let record = try #require(try await f.store.workers().first { $0.id == w1.id })
        #expect(record.stoppedAt == nil)
        #expect(record.queues == ["default"])
        #expect(record.concurrency == 2)
        #expect(record.heartbeatAt == instant(30, from: t0))
        #expect(try f.dump().count("workers") == 2)
    }

    @Test func expiredLeaseIsRecoveredWithALostAttempt() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", maxAttempts: 3)).id
        let other = try await f.store.enqueue(TaskSpec(name: "fresh")).id
        let now = instant(0)
        _ = try await f.store.claimAll(names: ["job"], worker: "dead-worker", leaseUntil: instant(10, from: now), now: now)
        _ = try await f.store.claimAll(names: ["fresh"], worker: "live-worker", leaseUntil: instant(100, from: now), now: now)

        // Not yet expired: nothing happens.
        #expect(try await f.store.recoverExpiredLeases(now: instant(10, from: now)) == [])
        let recoveredAt = instant(11, from: now)
        #expect(try await f.store.recoverExpiredLeases(now: recoveredAt) == [id])

        let task = try await f.store.record(id)
        #expect(task.state == .scheduled)
        #expect(task.attempts == 1)
        #expect(task.runAt == recoveredAt)
        #expect(task.leaseOwner == nil && task.leaseUntil == nil)
        #expect(task.finishedAt == nil)
        #expect(task.lastError?.contains("dead-worker") == true)
        let attempts = try await f.store.attempts(of: id)
        #expect(attempts.count == 1)
        #expect(attempts.first?.outcome == .lost)
        #expect(attempts.first?.worker == "dead-worker")
        #expect(attempts.first?.attempt == 1)
        #expect(attempts.first?.startedAt == now)
        #expect(attempts.first?.finishedAt == recoveredAt)
        #expect(try await f.store.record(other).state == .running)
        // Recovering again finds nothing; the task is claimable at once.
        #expect(try await f.store.recoverExpiredLeases(now: recoveredAt) == [])
        #expect(try await f.store.claimAll(names: ["job"], now: recoveredAt).first?.attempt == 2)
    }

    @Test func aLostAttemptDoesNotUseUpTheTasksAttempts() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", maxAttempts: 1)).id
        let now = instant(0)
        _ = try await f.store.claimAll(leaseUntil: instant(1, from: now), now: now)
        let recoveredAt = instant(5, from: now)
        #expect(try await f.store.recoverExpiredLeases(now: recoveredAt) == [id])
        let task = try await f.store.record(id)
        #expect(task.state == .scheduled)
        #expect(task.finishedAt == nil)
        #expect(task.attempts == 1 && task.maxAttempts == 2)
        #expect(task.losses == 1 && task.soloLosses == 0)
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.lost])
    }

    @Test func lossesWhileRunningAloneReachThePoisonLimitAndMakeTheTaskDead() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", maxAttempts: 1, poisonLimit: 2)).id
        var now = instant(0)
        // Lost beside others: not charged. Lost alone: charged, and the second charge is the limit.
        for (round, alone) in [false, true, true].enumerated() {
            let claimed = try #require(try await f.store.claimAll(leaseUntil: instant(1, from: now), now: now).first)
            #expect(claimed.losses == round)
            if alone {
                #expect(try await f.store.markRunningAlone(id, attempt: claimed.attempt, worker: "w1"))
                #expect(try await f.store.markRunningAlone(id, attempt: claimed.attempt, worker: "other") == false)
            }
            now = instant(5, from: now)
            #expect(try await f.store.recoverExpiredLeases(now: now) == [id])
        }
        let task = try await f.store.record(id)
        #expect(task.state == .dead)
        #expect(task.finishedAt == now)
        #expect(task.losses == 3 && task.soloLosses == 2 && task.poisonLimit == 2)
        #expect(task.lastError?.hasPrefix("poison: lost 2 times while running alone") == true, "\(task.lastError ?? "")")
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.lost, .lost, .lost])
    }

    @Test func aBadPoisonLimitIsRefused() async throws {
        let f = try StoreFixture()
        await #expect(throws: RotaError.self) { try await f.store.enqueue(TaskSpec(name: "job", poisonLimit: 0)) }
        #expect(try await f.store.list(TaskFilter(limit: 10)).isEmpty)
    }

    @Test func expiredLeaseOfACancelRequestedTaskMakesItCancelled() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", maxAttempts: 5)).id
        let now = instant(0)
        _ = try await f.store.claimAll(leaseUntil: instant(1, from: now), now: now)
        #expect(try await f.store.cancel([id], now: now) == [id: .requested])
        let recoveredAt = instant(5, from: now)
        #expect(try await f.store.recoverExpiredLeases(now: recoveredAt) == [id])
        let task = try await f.store.record(id)
        #expect(task.state == .cancelled)
        #expect(task.finishedAt == recoveredAt)
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.lost])
    }

    @Test func leasesOfDeadWorkersAreRecoveredAtOnce() async throws {
        let f = try StoreFixture()
        let ids = try await f.store.enqueue([TaskSpec(name: "a"), TaskSpec(name: "b"), TaskSpec(name: "c")]).map(\.id)
        let now = instant(0)
        _ = try await f.store.claimAll(names: ["a"], worker: "gone-1", leaseUntil: instant(3600, from: now), now: now)
        _ = try await f.store.claimAll(names: ["b"], worker: "gone-2", leaseUntil: instant(3600, from: now), now: now)
        _ = try await f.store.claimAll(names: ["c"], worker: "alive", leaseUntil: instant(3600, from: now), now: now)

        #expect(try await f.store.recoverLeases(ofWorkers: [], now: now, reason: "x") == [])
        let recovered = try await f.store.recoverLeases(ofWorkers: ["gone-1", "gone-2", "never-existed"],
                                                        now: instant(1, from: now), reason: "process 42 is gone")
        #expect(Set(recovered) == [ids[0], ids[1]])
        for id in ids.prefix(2) {
            let task = try await f.store.record(id)
            #expect(task.state == .scheduled)
            #expect(task.lastError == "process 42 is gone")
            let attempt = try #require(try await f.store.attempts(of: id).first)
            #expect(attempt.outcome == .lost)
            #expect(attempt.error == "process 42 is gone")
        }
        #expect(try await f.store.record(ids[2]).state == .running)
        #expect(try await f.store.attempts(of: ids[2]).isEmpty)
    }

    @Test func nextRunAtIsTheEarliestScheduledRunAtOfTheQueues() async throws {
        let f = try StoreFixture()
        #expect(try await f.store.nextRunAt(queues: ["default"], names: nil) == nil)
        let t = instant(0)
        _ = try await f.store.enqueue([
            TaskSpec(name: "a", queue: "q1", priority: 5, runAt: instant(300, from: t)),
            TaskSpec(name: "b", queue: "q1", priority: 0, runAt: instant(100, from: t)),
            TaskSpec(name: "c", queue: "q2", runAt: instant(50, from: t)),
            TaskSpec(name: "d", queue: "q3", runAt: instant(10, from: t)),
        ])
        #expect(try await f.store.nextRunAt(queues: ["q1"], names: nil) == instant(100, from: t))
        #expect(try await f.store.nextRunAt(queues: ["q1", "q2"], names: nil) == instant(50, from: t))
        #expect(try await f.store.nextRunAt(queues: ["nope"], names: nil) == nil)
        #expect(try await f.store.nextRunAt(queues: [], names: nil) == nil)
    }

    @Test func nextRunAtOnlyCountsTasksTheWorkerCanClaim() async throws {
        let f = try StoreFixture()
        let t = instant(0)
        _ = try await f.store.enqueue([
            TaskSpec(name: "unhandled", queue: "q", runAt: instant(10, from: t)),
            TaskSpec(name: "handled", queue: "q", runAt: instant(100, from: t)),
        ])
        // A worker without a handler for "unhandled" cannot claim it, so it must not be woken for it.
        #expect(try await f.store.nextRunAt(queues: ["q"], names: ["handled"]) == instant(100, from: t))
        #expect(try await f.store.nextRunAt(queues: ["q"], names: ["other"]) == nil)
        #expect(try await f.store.nextRunAt(queues: ["q"], names: []) == nil)
        #expect(try await f.store.nextRunAt(queues: ["q"], names: nil) == instant(10, from: t))
    }

    @Test func nextRunAtIgnoresRunningAndFinishedTasks() async throws {
        let f = try StoreFixture()
        let t = instant(0)
        let ids = try await f.store.enqueue([TaskSpec(name: "a", runAt: instant(-10, from: t)),
                                             TaskSpec(name: "b", runAt: instant(-5, from: t)),
                                             TaskSpec(name: "c", runAt: instant(20, from: t))]).map(\.id)
        _ = try await f.store.claimAll(names: ["a"], now: t)
        _ = try await f.store.cancel([ids[1]], now: t)
        #expect(try await f.store.nextRunAt(queues: ["default"], names: nil) == instant(20, from: t))
    }
}
