import Foundation
import Testing
@testable import Rota

@Suite("Store conformance: leases, heartbeats and recovery")
struct LeaseConformanceTests {
    @Test(arguments: StoreKind.all)
    func aHeartbeatExtendsOnlyItsOwnWorkersLeases(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let mine = try await f.store.enqueue(TaskSpec(name: "a", runAt: at(0))).id
        let theirs = try await f.store.enqueue(TaskSpec(name: "b", runAt: at(0))).id
        _ = try await f.store.claimDue(names: ["a"], worker: "w1", leaseUntil: at(10), now: at(0))
        _ = try await f.store.claimDue(names: ["b"], worker: "w2", leaseUntil: at(10), now: at(0))
        #expect(try await f.store.heartbeat(worker: "w1", now: at(5), leaseUntil: at(40)) == [])
        #expect(try await f.store.existing(mine).leaseUntil == at(40))
        #expect(try await f.store.existing(theirs).leaseUntil == at(10))
        // The extended lease is not recovered; the other worker's expired one is.
        #expect(try await f.store.recoverExpiredLeases(now: at(20)) == [theirs])
        #expect(try await f.store.existing(mine).state == .running)
        #expect(try await f.store.existing(mine).leaseOwner == "w1")
    }

    @Test(arguments: StoreKind.all)
    func aHeartbeatReturnsTheRunningTasksACancelWasRequestedFor(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let ids = try await f.store.enqueue(["a", "b", "c"].map { TaskSpec(name: $0, runAt: at(0)) }).map(\.id)
        _ = try await f.store.claimDue(names: ["a", "b"], worker: "w1", now: at(0))
        #expect(try await f.store.cancel([ids[0]], now: at(1)) == [ids[0]: .requested])
        #expect(try await f.store.heartbeat(worker: "w1", now: at(2), leaseUntil: at(30)) == [ids[0]])
        // Asked again at the next heartbeat, until the attempt ends.
        #expect(try await f.store.heartbeat(worker: "w1", now: at(3), leaseUntil: at(30)) == [ids[0]])
        #expect(try await f.store.heartbeat(worker: "w2", now: at(2), leaseUntil: at(30)) == [])
        #expect(try await f.store.existing(ids[0]).cancelRequested)
        #expect(try await f.store.existing(ids[1]).cancelRequested == false)
        #expect(try await f.store.existing(ids[2]).state == .scheduled)
    }

    @Test(arguments: StoreKind.all)
    func anExpiredLeaseIsRecoveredWithALostAttemptAndTheTaskIsDueAgain(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(-5), maxAttempts: 3)).id
        let other = try await f.store.enqueue(TaskSpec(name: "fresh", runAt: at(-5))).id
        _ = try await f.store.claimDue(names: ["job"], worker: "dead-worker", leaseUntil: at(10), now: at(0))
        _ = try await f.store.claimDue(names: ["fresh"], worker: "live-worker", leaseUntil: at(100), now: at(0))

        // A lease is held until the instant it ends.
        #expect(try await f.store.recoverExpiredLeases(now: at(10)) == [])
        #expect(try await f.store.recoverExpiredLeases(now: at(11)) == [id])

        let task = try await f.store.existing(id)
        #expect(task.state == .scheduled)
        #expect(task.attempts == 1)
        #expect(task.runAt == at(11))
        #expect(task.leaseOwner == nil && task.leaseUntil == nil)
        #expect(task.finishedAt == nil)
        #expect(task.lastError?.contains("dead-worker") == true)
        let attempts = try await f.store.attempts(of: id)
        #expect(attempts.count == 1)
        #expect(attempts.first?.outcome == .lost)
        #expect(attempts.first?.worker == "dead-worker")
        #expect(attempts.first?.attempt == 1)
        #expect(attempts.first?.startedAt == at(0))
        #expect(attempts.first?.finishedAt == at(11))
        #expect(attempts.first?.error == task.lastError)
        #expect(try await f.store.existing(other).state == .running)
        // Recovering again finds nothing; the task is claimable at once, for its next attempt.
        #expect(try await f.store.recoverExpiredLeases(now: at(11)) == [])
        #expect(try await f.store.claimOne(names: ["job"], worker: "w2", now: at(11)).attempt == 2)
    }

    @Test(arguments: StoreKind.all)
    func anExpiredLeaseOnTheLastAttemptGivesTheAttemptBack(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 1)).id
        _ = try await f.store.claimDue(leaseUntil: at(1), now: at(0))
        #expect(try await f.store.recoverExpiredLeases(now: at(5)) == [id])
        let task = try await f.store.existing(id)
        #expect(task.state == .scheduled)
        #expect(task.finishedAt == nil)
        #expect(task.leaseOwner == nil)
        #expect(task.maxAttempts == 2)
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.lost])
        #expect(try await f.store.claimDue(now: at(100)).map(\.id) == [id])
    }

    @Test(arguments: StoreKind.all)
    func anExpiredLeaseOfATaskACancelWasRequestedForMakesItCancelled(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 5)).id
        _ = try await f.store.claimDue(leaseUntil: at(1), now: at(0))
        #expect(try await f.store.cancel([id], now: at(0)) == [id: .requested])
        #expect(try await f.store.recoverExpiredLeases(now: at(5)) == [id])
        let task = try await f.store.existing(id)
        #expect(task.state == .cancelled)
        #expect(task.finishedAt == at(5))
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.lost])
    }

    @Test(arguments: StoreKind.all)
    func theLeasesOfDeadWorkersAreRecoveredAtOnceWithTheReason(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let ids = try await f.store.enqueue(["a", "b", "c"].map { TaskSpec(name: $0, runAt: at(0)) }).map(\.id)
        _ = try await f.store.claimDue(names: ["a"], worker: "gone-1", leaseUntil: at(3600), now: at(0))
        _ = try await f.store.claimDue(names: ["b"], worker: "gone-2", leaseUntil: at(3600), now: at(0))
        _ = try await f.store.claimDue(names: ["c"], worker: "alive", leaseUntil: at(3600), now: at(0))

        #expect(try await f.store.recoverLeases(ofWorkers: [], now: at(1), reason: "x") == [])
        let recovered = try await f.store.recoverLeases(ofWorkers: ["gone-1", "gone-2", "never-existed"],
                                                        now: at(1), reason: "process 42 is gone")
        #expect(Set(recovered) == [ids[0], ids[1]])
        #expect(recovered.count == 2)
        for (id, worker) in zip(ids.prefix(2), ["gone-1", "gone-2"]) {
            let task = try await f.store.existing(id)
            #expect(task.state == .scheduled)
            #expect(task.runAt == at(1))
            #expect(task.lastError == "process 42 is gone")
            #expect(task.leaseOwner == nil)
            let attempts = try await f.store.attempts(of: id)
            #expect(attempts.count == 1)
            #expect(attempts.first?.outcome == .lost)
            #expect(attempts.first?.worker == worker)
            #expect(attempts.first?.error == "process 42 is gone")
            #expect(attempts.first?.finishedAt == at(1))
        }
        #expect(try await f.store.existing(ids[2]).state == .running)
        #expect(try await f.store.attempts(of: ids[2]).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func recoveringTheLeasesOfADeadWorkerOnItsLastAttemptGivesTheAttemptBack(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 1)).id
        _ = try await f.store.claimDue(worker: "gone", leaseUntil: at(3600), now: at(0))
        #expect(try await f.store.recoverLeases(ofWorkers: ["gone"], now: at(2), reason: "gone") == [id])
        let task = try await f.store.existing(id)
        #expect(task.state == .scheduled && task.maxAttempts == 2 && task.losses == 1)
        #expect(task.finishedAt == nil)
    }

    @Test(arguments: StoreKind.all)
    func recoveryLeavesScheduledAndFinishedTasksAlone(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let s = try await TasksInEveryState.make(f.store, finishedAt: at(-1))
        let before = try await f.store.snapshot()
        #expect(try await f.store.recoverLeases(ofWorkers: ["other"], now: at(0), reason: "x") == [])
        #expect(try await f.store.snapshot() == before)
        // The running one is w1's, whose lease (at(3600)) has not expired.
        #expect(try await f.store.recoverExpiredLeases(now: at(3600)) == [])
        #expect(try await f.store.snapshot() == before)
        #expect(try await f.store.recoverExpiredLeases(now: at(3601)) == [s.running])
    }

    @Test(arguments: StoreKind.all)
    func aLostAttemptIsGivenBackAndCountedAsALoss(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 1)).id
        let claimed = try #require(try await f.store.claimDue(worker: "w1", leaseUntil: at(10), now: at(0)).first)
        #expect(claimed.losses == 0)
        #expect(try await f.store.recoverExpiredLeases(now: at(11)) == [id])
        let task = try await f.store.existing(id)
        #expect(task.state == .scheduled)
        #expect(task.attempts == 1 && task.maxAttempts == 2)
        #expect(task.losses == 1 && task.soloLosses == 0 && task.poisonLimit == TaskSpec.defaultPoisonLimit)
        #expect(try await f.store.claimDue(worker: "w2", leaseUntil: at(30), now: at(11)).first?.losses == 1)
    }

    @Test(arguments: StoreKind.all)
    func onlyLossesWhileRunningAloneAreChargedAndThePoisonLimitMakesTheTaskDead(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 1, poisonLimit: 2)).id
        var now = 0.0
        for alone in [false, true, false, true] {
            let claimed = try #require(try await f.store.claimDue(worker: "w1", leaseUntil: at(now + 1), now: at(now)).first)
            if alone {
                #expect(try await f.store.markRunningAlone(id, attempt: claimed.attempt, worker: "other") == false)
                #expect(try await f.store.markRunningAlone(id, attempt: claimed.attempt - 1, worker: "w1") == false)
                #expect(try await f.store.markRunningAlone(id, attempt: claimed.attempt, worker: "w1"))
            }
            now += 5
            #expect(try await f.store.recoverLeases(ofWorkers: ["w1"], now: at(now), reason: "worker gone") == [id])
        }
        let task = try await f.store.existing(id)
        #expect(task.state == .dead)
        #expect(task.finishedAt == at(now))
        #expect(task.losses == 4 && task.soloLosses == 2)
        #expect(task.lastError?.hasPrefix("poison: lost 2 times while running alone on its worker (poison limit 2)") == true,
                "\(task.lastError ?? "")")
        #expect(task.lastError?.hasSuffix("worker gone") == true)
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.lost, .lost, .lost, .lost])
        #expect(try await f.store.attempts(of: id).last?.error == "worker gone")
    }

    @Test(arguments: StoreKind.all)
    func expiredLeasesWhileRunningAloneAreChargedAndThePoisonLimitMakesTheTaskDead(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 1, poisonLimit: 2)).id
        var now = 0.0
        // Lost beside others: not charged. Lost alone: charged, and the second charge is the limit.
        for (round, alone) in [false, true, true].enumerated() {
            let claimed = try #require(try await f.store.claimDue(leaseUntil: at(now + 1), now: at(now)).first)
            #expect(claimed.losses == round)
            if alone {
                #expect(try await f.store.markRunningAlone(id, attempt: claimed.attempt, worker: "w1"))
                #expect(try await f.store.markRunningAlone(id, attempt: claimed.attempt, worker: "other") == false)
            }
            now += 5
            #expect(try await f.store.recoverExpiredLeases(now: at(now)) == [id])
        }
        let task = try await f.store.existing(id)
        #expect(task.state == .dead)
        #expect(task.finishedAt == at(now))
        #expect(task.losses == 3 && task.soloLosses == 2 && task.poisonLimit == 2)
        #expect(task.lastError?.hasPrefix("poison: lost 2 times while running alone") == true, "\(task.lastError ?? "")")
        #expect(try await f.store.attempts(of: id).map(\.outcome) == [.lost, .lost, .lost])
    }

    @Test(arguments: StoreKind.all)
    func aFinishedAloneAttemptLeavesNoChargeForTheNextOne(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 3)).id
        let first = try #require(try await f.store.claimDue(worker: "w1", leaseUntil: at(10), now: at(0)).first)
        #expect(try await f.store.markRunningAlone(id, attempt: first.attempt, worker: "w1"))
        // It fails alone and is retried; the next attempt runs beside others and is lost: not charged.
        _ = try await f.store.complete([first.completing(.retry(outcome: .failed, error: "x", runAt: at(1)), at: at(1))])
        _ = try #require(try await f.store.claimDue(worker: "w1", leaseUntil: at(20), now: at(2)).first)
        #expect(try await f.store.recoverLeases(ofWorkers: ["w1"], now: at(3), reason: "gone") == [id])
        let task = try await f.store.existing(id)
        #expect(task.losses == 1 && task.soloLosses == 0 && task.state == .scheduled)
    }
}
