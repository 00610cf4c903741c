import Foundation
import Testing
@testable import Rota

@Suite("Store conformance: workers and unhandled tasks")
struct WorkerConformanceTests {
    private func worker(_ id: String, queues: [String] = ["default"], names: [String] = ["*"], heartbeat: Date = at(0),
                        concurrency: Int = 1) -> WorkerRecord {
        WorkerRecord(id: id, host: "host", pid: 7, queues: queues, taskNames: names, concurrency: concurrency,
                     startedAt: heartbeat, heartbeatAt: heartbeat)
    }

    @Test(arguments: StoreKind.all)
    func aRegisteredWorkerReadsBackAsRegistered(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        #expect(try await f.store.workers().isEmpty)
        let w = WorkerRecord(id: "host-1-aaa", host: "build-3", pid: 4242, queues: ["default", "mail"],
                             taskNames: ["exec", "email.send"], concurrency: 8, startedAt: at(-100), heartbeatAt: at(-90))
        try await f.store.registerWorker(w)
        #expect(try await f.store.workers() == [w])
    }

    @Test(arguments: StoreKind.all)
    func workersAreListedMostRecentHeartbeatFirst(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let w1 = worker("w1", heartbeat: at(-100))
        let w2 = worker("w2", heartbeat: at(-99))
        let w3 = worker("w3", heartbeat: at(-200))
        for w in [w1, w2, w3] { try await f.store.registerWorker(w) }
        #expect(try await f.store.workers().map(\.id) == ["w2", "w1", "w3"])
        _ = try await f.store.heartbeat(worker: "w3", now: at(0), leaseUntil: at(30))
        _ = try await f.store.heartbeat(worker: "w1", now: at(-1), leaseUntil: at(30))
        let workers = try await f.store.workers()
        #expect(workers.map(\.id) == ["w3", "w1", "w2"])
        #expect(workers.map(\.heartbeatAt) == [at(0), at(-1), at(-99)])
        #expect(workers.map(\.startedAt) == [at(-200), at(-100), at(-99)])
    }

    @Test(arguments: StoreKind.all)
    func aStoppedWorkerKeepsItsRowWithItsStop(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await f.store.registerWorker(worker("w1", heartbeat: at(-100)))
        try await f.store.registerWorker(worker("w2", heartbeat: at(-20)))
        try await f.store.stopWorker("w1", at: at(-10))
        let workers = try await f.store.workers()
        #expect(workers.map(\.id) == ["w1", "w2"])  // the stop is its latest sign of life
        #expect(workers[0].stoppedAt == at(-10))
        #expect(workers[0].heartbeatAt == at(-10))
        #expect(workers[0].status(now: at(0)) == .stopped)
        #expect(workers[1].stoppedAt == nil)
        #expect(workers[1].status(now: at(0)) == .live)
        #expect(workers[1].status(now: at(11)) == .dead)  // silent for more than the liveness window
        // Stopping a worker that does not exist changes nothing.
        try await f.store.stopWorker("nobody", at: at(0))
        #expect(try await f.store.workers() == workers)
    }

    @Test(arguments: StoreKind.all)
    func reRegisteringAWorkerKeepsItsStartAndClearsItsStop(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let first = worker("w1", queues: ["default", "mail"], names: ["exec"], heartbeat: at(-100), concurrency: 8)
        try await f.store.registerWorker(first)
        try await f.store.stopWorker("w1", at: at(-50))
        var again = first
        again.queues = ["default"]
        again.taskNames = ["exec", "report"]
        again.concurrency = 2
        again.pid = 8
        again.startedAt = at(-20)
        again.heartbeatAt = at(-20)
        try await f.store.registerWorker(again)
        let workers = try await f.store.workers()
        #expect(workers.count == 1)
        let record = try #require(workers.first)
        #expect(record.stoppedAt == nil)
        #expect(record.queues == ["default"])
        #expect(record.taskNames == ["exec", "report"])
        #expect(record.concurrency == 2)
        #expect(record.pid == 8)
        #expect(record.heartbeatAt == at(-20))
        #expect(record.startedAt == at(-100))  // re-registering keeps its start
    }

    @Test(arguments: StoreKind.all)
    func aHeartbeatOfAnUnknownWorkerChangesNoWorker(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await f.store.registerWorker(worker("w1", heartbeat: at(-10)))
        #expect(try await f.store.heartbeat(worker: "ghost", now: at(0), leaseUntil: at(30)) == [])
        #expect(try await f.store.workers().map(\.id) == ["w1"])
        #expect(try await f.store.workers().first?.heartbeatAt == at(-10))
    }

    /// Scheduled tasks no live worker can run, per queue and name: a name nobody handles, and a name handled
    /// only by workers of other queues. Stopped and silent workers do not count; `*` handles every name.
    @Test(arguments: StoreKind.all)
    func unhandledTasksAreThoseNoLiveWorkerBothServesAndHandles(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let store = f.store
        let batch = try await store.openBatch(name: "b")
        _ = try await store.addBatchItems(batch.id, [TaskSpec(name: "resize", batchItem: "1"), TaskSpec(name: "orphan", batchItem: "2")])
        _ = try await store.sealBatch(batch.id)
        _ = try await store.enqueue([TaskSpec(name: "resize"), TaskSpec(name: "resize", queue: "reports"),
                                     TaskSpec(name: "resize", queue: "reports"), TaskSpec(name: "orphan", queue: "reports"),
                                     TaskSpec(name: "mail"), TaskSpec(name: "running")])
        _ = try await store.claimDue(names: ["running"])  // running: not waiting for anyone
        func sorted(_ groups: [UnhandledTasks]) -> [UnhandledTasks] {
            groups.sorted { ($0.queue, $0.name) < ($1.queue, $1.name) }
        }
        // No worker at all: every group of scheduled tasks.
        let none = try await store.unhandledTasks(now: at(0), batch: nil)
        #expect(sorted(none).map { "\($0.queue)/\($0.name)=\($0.scheduled)" }
                == ["default/mail=1", "default/orphan=1", "default/resize=2", "reports/orphan=1", "reports/resize=2"])
        #expect(none.allSatisfy { !$0.nameHandledElsewhere })
        // Live: resize and mail in default. Stopped: one that served everything. Silent for an hour: another.
        try await store.registerWorker(worker("live", queues: ["default"], names: ["resize", "mail"]))
        try await store.registerWorker(worker("stopped", queues: ["default", "reports"], names: ["*"]))
        try await store.stopWorker("stopped", at: at(0))
        try await store.registerWorker(worker("silent", queues: ["reports"], names: ["*"], heartbeat: at(-3600)))
        #expect(sorted(try await store.unhandledTasks(now: at(0), batch: nil)) == [
            UnhandledTasks(queue: "default", name: "orphan", scheduled: 1, nameHandledElsewhere: false),
            UnhandledTasks(queue: "reports", name: "orphan", scheduled: 1, nameHandledElsewhere: false),
            UnhandledTasks(queue: "reports", name: "resize", scheduled: 2, nameHandledElsewhere: true),
        ])
        // Within the batch: only its own items, counted in it.
        #expect(try await store.unhandledTasks(now: at(0), batch: batch.id)
                == [UnhandledTasks(queue: "default", name: "orphan", scheduled: 1, nameHandledElsewhere: false)])
        // Liveness is judged at `now`: an hour on, the live worker is silent too.
        #expect(try await store.unhandledTasks(now: at(3600), batch: nil).count == 5)
        // A live worker for everything in every queue: nothing waits.
        try await store.registerWorker(worker("all", queues: ["default", "reports"], names: ["*"]))
        #expect(try await store.unhandledTasks(now: at(0), batch: nil).isEmpty)
        #expect(try await store.unhandledTasks(now: at(0), batch: batch.id).isEmpty)
    }
}
