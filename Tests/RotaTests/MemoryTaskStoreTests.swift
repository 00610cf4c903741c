import Foundation
import Synchronization
import Testing
@testable import Rota
@testable import RotaSQLiteStore

@Suite("MemoryTaskStore")
struct MemoryTaskStoreTests {
    struct Greeting: Codable, Sendable { var name: String }
    struct FirstTryFails: Error {}

    /// The example of the type's documentation: a scheduler runs every task of a memory store to the end.
    @Test func aSchedulerRunsItsTasksToCompletion() async throws {
        let store = MemoryTaskStore()
        let scheduler = Scheduler(store: store, configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.register("greet") { (greeting: Greeting, _) in "hello \(greeting.name)" }
        let failedOnce = Mutex<Set<String>>([])
        try scheduler.register("flaky", retry: .fixed(maxAttempts: 3, delay: .zero)) { (greeting: Greeting, context) in
            if failedOnce.withLock({ $0.insert(greeting.name).inserted }) { throw FirstTryFails() }
            return "attempt \(context.attempt)"
        }
        var ids: [TaskID] = []
        for name in ["ada", "grace", "edsger"] {
            ids.append(try await scheduler.enqueue("greet", payload: Greeting(name: name)))
        }
        let flaky = try await scheduler.enqueue("flaky", payload: Greeting(name: "x"))
        try await runUntilEmpty(scheduler)

        let task = try #require(try await store.task(ids[0]))
        #expect(task.state == .succeeded)
        #expect(task.result == #""hello ada""#)
        for id in ids { #expect(try await store.task(id)?.state == .succeeded) }
        #expect(try await store.task(flaky)?.result == #""attempt 2""#)
        #expect(try await store.attempts(of: flaky).map(\.outcome) == [.failed, .succeeded])
        #expect(try await store.countUnfinished(queues: ["default"], names: nil) == 0)
        let worker = try #require(try await store.workers().first { $0.id == scheduler.workerID })
        #expect(worker.stoppedAt != nil)
    }

    /// The store's own methods through the protocol's helpers: validation, unique keys, claims, results.
    @Test func enqueueClaimAndCompleteThroughTheProtocol() async throws {
        let store = MemoryTaskStore(maxPayloadBytes: 16)
        let now = Date(unixMillis: 4_102_444_800_000)
        await #expect(throws: RotaError.self) { try await store.enqueue(TaskSpec(name: "big", payload: #"{"text":"too long"}"#)) }
        let first = try await store.enqueue(TaskSpec(name: "report", runAt: now, uniqueKey: "day-1"))
        let again = try await store.enqueue(TaskSpec(name: "report", runAt: now, uniqueKey: "day-1"))
        #expect(first == EnqueueResult(id: 1, inserted: true))
        #expect(again == EnqueueResult(id: 1, inserted: false))
        let claimed = try await store.claim([ClaimRequest(queue: "default", names: nil, limit: 5)], worker: "w",
                                            leaseUntil: now + 60, now: now)
        #expect(claimed.map(\.id) == [1])
        let done = try #require(claimed.first)
        let applied = try await store.complete([
            Completion(taskID: 1, attempt: done.attempt, worker: "w", startedAt: done.startedAt, finishedAt: now + 1,
                       resolution: .succeeded(result: "42")),
            Completion(taskID: 1, attempt: done.attempt, worker: "w", startedAt: done.startedAt, finishedAt: now + 2,
                       resolution: .dead(outcome: .failed, error: "late")),
        ])
        #expect(applied == [true, false])
        let record = try #require(try await store.task(1))
        #expect(record.state == .succeeded)
        #expect(record.result == "42")
        #expect(record.finishedAt == now + 1)
    }

    /// A backlog drains in claim order (priority, then `run_at`, then id), a turn's claims leaving the due
    /// tasks in order for the next, whatever names are asked for.
    @Test func aBacklogDrainsInClaimOrder() async throws {
        let store = MemoryTaskStore()
        let now = Date(unixMillis: 4_102_444_800_000)
        let specs = (0..<20_000).map { n in
            TaskSpec(name: n % 3 == 0 ? "x" : "y", priority: n % 4, runAt: now - TimeInterval((n * 7919) % 1000))
        }
        _ = try await store.enqueue(specs)
        var order: [ClaimedTask] = []
        var turn = ClaimTurn(applied: [], claimed: [], filled: true)
        while turn.filled || !turn.claimed.isEmpty {
            let ends = turn.claimed.map { $0.ending(.succeeded(result: nil), at: now) }
            turn = try await store.completeAndClaim(ends, [ClaimRequest(queue: "default", names: ["x"], limit: 300),
                                                          ClaimRequest(queue: "default", names: nil, limit: 512)],
                                                    worker: "w", leaseUntil: now + 60, now: now)
            #expect(turn.applied.allSatisfy { $0 })
            order += turn.claimed
        }
        #expect(order.count == 20_000)
        #expect(try await store.countUnfinished(queues: ["default"], names: nil) == 0)
        // Within each request, the claim order.
        let firstTurn = Array(order.prefix(300))
        #expect(firstTurn.allSatisfy { $0.name == "x" })
        let sorted = firstTurn.sorted { ($0.priority, -$0.runAt.unixMillis, -$0.id) > ($1.priority, -$1.runAt.unixMillis, -$1.id) }
        #expect(firstTurn.map(\.id) == sorted.map(\.id))
    }

    /// A batch's `on_complete` task: its payload minified as SQLite's `json()` writes it, the default payload
    /// escaped as `json_object` escapes it, and enqueued once, even when the batch reopens after its task
    /// was purged. Both stores, side by side.
    @Test(arguments: ["sqlite", "memory"])
    func onCompleteRunsOnceWithTheSamePayloadAsSQLite(kind: String) async throws {
        let database = try TempDatabase()
        let store: any TaskStore = kind == "sqlite" ? try database.store() : MemoryTaskStore()
        let now = Date(unixMillis: 4_102_444_800_000)
        let spec = #"{ "name" : "done", "payload" : { "x" : [1, 2.50E+1, "\u00e9 \/"] }, "name": "ignored" }"#
        let quoted = try await store.openBatch(name: "q\"uo\\te\n", onComplete: #"{"name":"after","queue":"other"}"#)
        let batch = try await store.openBatch(name: "items", onComplete: spec)
        #expect(try await store.addBatchItems(batch.id, [TaskSpec(name: "item", runAt: now, batchItem: "1"),
                                                        TaskSpec(name: "item", runAt: now, batchItem: "2")]) == 2)
        _ = try await store.sealBatch(quoted.id)   // no items: complete at once
        _ = try await store.sealBatch(batch.id)
        var claimed = try await store.claim([ClaimRequest(queue: "default", names: ["item"], limit: 5)], worker: "w",
                                            leaseUntil: now + 60, now: now)
        #expect(try await store.complete([
            claimed[0].ending(.succeeded(result: nil), at: now + 1),
            claimed[1].ending(.dead(outcome: .failed, error: "no"), at: now + 2),
        ]) == [true, true])
        #expect(try await store.batch(named: "items")?.phase == "complete")

        let onComplete = try await store.list(TaskFilter(name: "done"))
        #expect(onComplete.count == 1)
        #expect(onComplete.first?.payload == #"{"x":[1,2.50E+1,"\u00e9 \/"]}"#)
        #expect(onComplete.first?.uniqueKey == "rota:batch-complete:\(batch.id)")
        #expect(onComplete.first?.maxAttempts == 3)
        let after = try #require(try await store.list(TaskFilter(name: "after")).first)
        #expect(after.payload == #"{"batch":"q\"uo\\te\n"}"#)
        #expect(after.queue == "other")

        // The task runs and is purged; a retry reopens the batch, which completes again without a second task.
        let ran = try await store.claim([ClaimRequest(queue: "default", names: ["done"], limit: 1)], worker: "w",
                                        leaseUntil: now + 60, now: now)
        #expect(try await store.complete([ran[0].ending(.succeeded(result: nil), at: now + 3)]) == [true])
        #expect(try await store.purge(olderThan: now + 4, states: [.succeeded]) == 2)
        #expect(try await store.retryBatch("items", now: now + 5) == 1)
        #expect(try await store.batch(named: "items")?.completedAt == nil)
        claimed = try await store.claim([ClaimRequest(queue: "default", names: ["item"], limit: 5)], worker: "w",
                                        leaseUntil: now + 60, now: now + 5)
        #expect(try await store.complete([claimed[0].ending(.succeeded(result: nil), at: now + 6)]) == [true])
        #expect(try await store.batch(named: "items")?.phase == "complete")
        #expect(try await store.list(TaskFilter(name: "done")).isEmpty)
        // Purged ids are given again, as SQLite gives rowids (one more than the largest left).
        let largest = try #require(try await store.list(TaskFilter(limit: 1)).first?.id)
        #expect(try await store.enqueue(TaskSpec(name: "next", runAt: now)).id == largest + 1)
    }

    /// Both stores, driven by the same random operations, answer every call alike and hold the same
    /// tasks, attempts, counts, batches, schedules and workers after each one (what only the wall clock
    /// stamps is left out).
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func behavesAsTheSQLiteStoreUnderRandomOperations(seed: UInt64) async throws {
        let database = try TempDatabase()
        var harness = Differential(sqlite: try database.store(), memory: MemoryTaskStore(), seed: seed)
        for step in 0..<300 {
            try await harness.step(step)
        }
        #expect(harness.mismatches.isEmpty, "\(harness.mismatches.prefix(5).joined(separator: "\n"))")
    }
}

extension ClaimedTask {
    fileprivate func ending(_ resolution: Completion.Resolution, worker: String = "w", at finishedAt: Date) -> Completion {
        Completion(taskID: id, attempt: attempt, worker: worker, startedAt: startedAt, finishedAt: finishedAt, resolution: resolution)
    }
}

/// Runs the same random operation on two stores and records where they differ.
private struct Differential {
    let sqlite: any TaskStore
    let memory: any TaskStore
    var random: Seeded
    var now = Date(unixMillis: 4_102_444_800_000)
    var claims: [(task: ClaimedTask, worker: String)] = []
    var mismatches: [String] = []
    var largestID: TaskID = 0

    typealias Seeded = RetryPolicyTests.Seeded

    init(sqlite: any TaskStore, memory: any TaskStore, seed: UInt64) {
        self.sqlite = sqlite
        self.memory = memory
        random = Seeded(state: seed)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &random) < p }
    mutating func pick<T>(_ values: [T]) -> T { values[int(0...values.count - 1)] }
    func seconds(_ s: Int) -> Date { now + TimeInterval(s) }

    /// Calls `body` on both stores and compares the outcomes (values, or errors).
    mutating func both<T: Equatable & Sendable>(_ what: String, _ body: (any TaskStore) async throws -> T) async -> T? {
        let a: Result<T, RotaError>, b: Result<T, RotaError>
        do { a = .success(try await body(sqlite)) } catch { a = .failure(error as? RotaError ?? RotaError(.database, "\(error)")) }
        do { b = .success(try await body(memory)) } catch { b = .failure(error as? RotaError ?? RotaError(.database, "\(error)")) }
        if a != b { mismatches.append("\(what): sqlite \(a) memory \(b)") }
        return try? a.get()
    }

    mutating func step(_ step: Int) async throws {
        switch int(0...19) {
        case 0...3: await enqueue(step)
        case 4: await openBatch()
        case 5:
            let id = Int64(int(1...4))
            _ = await both("seal \(id)") { Normal.batch(try await $0.sealBatch(id)) }
        case 6...8: await turn(step)
        case 9:
            let worker = pick(["w1", "w2"])
            let lease = seconds(int(5...60))
            let now = self.now
            _ = await both("heartbeat \(worker)") { try await $0.heartbeat(worker: worker, now: now, leaseUntil: lease).sorted() }
        case 10:
            now += TimeInterval(int(0...30))
            let now = self.now
            _ = await both("recover") { try await $0.recoverExpiredLeases(now: now).sorted() }
        case 11:
            let worker = pick(["w1", "w2", "w3"])
            let now = self.now
            _ = await both("recover \(worker)") { try await $0.recoverLeases(ofWorkers: [worker], now: now, reason: "gone").sorted() }
        case 12:
            let ids = (0..<int(1...3)).map { _ in TaskID(int(1...Int(largestID) + 1)) }
            let now = self.now
            _ = await both("cancel \(ids)") { try await $0.cancel(ids, now: now) }
        case 13:
            let ids = (0..<int(1...3)).map { _ in TaskID(int(1...Int(largestID) + 1)) }
            let now = self.now
            _ = await both("retry \(ids)") { try await $0.retry(ids, now: now) }
        case 14:
            let state = pick([TaskState.dead, .cancelled, .dead, .running])
            let queue = chance(0.5) ? nil : pick(["q1", "q2"])
            let now = self.now
            _ = await both("retryAll \(state)") { try await $0.retryAll(state: state, queue: queue, now: now) }
        case 15:
            let states = TaskState.allCases.filter { _ in chance(0.3) }
            let before = seconds(-int(0...40))
            _ = await both("purge \(states)") { try await $0.purge(olderThan: before, states: states) }
        case 16:
            let name = pick(["b1", "b2", "b3"])
            let now = self.now
            if chance(0.5) {
                _ = await both("retryBatch \(name)") { try await $0.retryBatch(name, now: now) }
            } else {
                _ = await both("cancelBatch \(name)") { store in
                    let (cancelled, requested) = try await store.cancelBatch(name, now: now)
                    return [cancelled, requested]
                }
            }
        case 17:
            let worker = pick(["w1", "w2", "w3"])
            let now = self.now
            if chance(0.7) {
                let record = WorkerRecord(id: worker, host: "h", pid: Int32(int(1...9)), queues: Array(["q1", "q2"].prefix(int(0...2))),
                                          taskNames: pick([["a", "b"], ["*"], ["c"], []]), concurrency: int(1...4),
                                          startedAt: now, heartbeatAt: now)
                _ = await both("register \(worker)") { try await $0.registerWorker(record); return true }
            } else {
                _ = await both("stop \(worker)") { try await $0.stopWorker(worker, at: now); return true }
            }
        case 18: await schedules()
        default:
            now += TimeInterval(int(0...20))
        }
        await compareEverything("after step \(step)")
    }

    mutating func enqueue(_ step: Int) async {
        var specs: [TaskSpec] = []
        if chance(0.05) {
            // Many plain tasks at once (SQLite's multi-row INSERT).
            specs = (0..<int(32...70)).map { n in
                TaskSpec(name: pick(["a", "b"]), payload: "[\(n)]", queue: pick(["q1", "q2"]), runAt: seconds(int(-30...30)))
            }
        }
        for _ in 0..<int(1...4) {
            var spec = TaskSpec(name: pick(["a", "b", "c"]), payload: #"{"n": \#(int(0...9))}"#, queue: pick(["q1", "q2"]),
                                priority: int(0...2), runAt: seconds(int(-30...30)), maxAttempts: int(1...3),
                                timeout: chance(0.2) ? .milliseconds(int(1...5000)) : nil)
            if chance(0.2) { spec.uniqueKey = "k\(int(0...5))" }
            if chance(0.3) {
                spec.batchID = Int64(chance(0.1) ? 9 : int(1...3))
                spec.batchItem = "i\(int(0...9))"
            }
            if chance(0.1) {
                spec.schedule = pick(["every", "other"])
                spec.fireAt = seconds(60 * int(0...5))
            }
            specs.append(spec)
        }
        let results = await both("enqueue at step \(step)") { try await $0.enqueue(specs) }
        largestID = max(largestID, results?.map(\.id).max() ?? 0)
    }

    mutating func openBatch() async {
        let name = pick(["b1", "b2", "b3"])
        let onComplete = chance(0.5) ? nil : pick([#"{"name":"done"}"#, #"{ "name": "done", "payload": [1, {"a" : 2}], "queue": "q2" }"#])
        _ = await both("openBatch \(name)") { Normal.batch(try await $0.openBatch(name: name, queue: "q1", onComplete: onComplete)) }
    }

    mutating func turn(_ step: Int) async {
        var completions: [Completion] = []
        if !claims.isEmpty {
            for _ in 0..<int(0...3) {
                let (task, worker) = pick(claims)
                let end = seconds(int(0...5))
                let resolution: Completion.Resolution = switch int(0...5) {
                case 0, 1: .succeeded(result: chance(0.5) ? nil : #"{"ok":true}"#)
                case 2: .retry(outcome: pick([.failed, .timedOut]), error: "retry me", runAt: seconds(int(0...20)))
                case 3: .dead(outcome: .failed, error: "fatal")
                case 4: .cancelled(reason: "asked")
                default: .handBack(reason: "shutdown")
                }
                completions.append(task.ending(resolution, worker: chance(0.9) ? worker : "other", at: end))
            }
        }
        var requests: [ClaimRequest] = []
        for _ in 0..<int(0...3) {
            let budgets = ["x", "y"].filter { _ in chance(0.4) }.map { ClaimBudget(key: $0, limit: int(0...4)) }
            requests.append(ClaimRequest(queue: pick(["q1", "q2"]), names: chance(0.5) ? nil : Array(["a", "b", "c"].filter { _ in chance(0.5) }),
                                         limit: int(0...4), budgets: budgets))
        }
        let worker = pick(["w1", "w2"])
        let lease = seconds(int(5...60))
        let now = self.now
        let completionsNow = completions, requestsNow = requests
        let turn = await both("turn at step \(step)") {
            Normal.turn(try await $0.completeAndClaim(completionsNow, requestsNow, worker: worker, leaseUntil: lease, now: now))
        }
        for task in turn?.claimed ?? [] { claims.append((task, worker)) }
        if claims.count > 40 { claims.removeFirst(claims.count - 40) }
    }

    mutating func schedules() async {
        let specs = ["every", "other", "third"].filter { _ in chance(0.7) }.map { name in
            ScheduleSpec(name: name, expression: pick(["* * * * *", "*/2 * * * *"]), taskName: pick(["a", "c"]),
                         queue: pick(["q1", "q2"]), maxAttempts: int(1...2), timeout: chance(0.3) ? pick([.milliseconds(1500), .nanoseconds(1_500_000_001)]) : nil,
                         missed: pick([.skip, .once, .all(cap: 3)]), overlap: pick([.allow, .skip]))
        }
        let now = self.now
        if chance(0.4) {
            _ = await both("sync") { store in
                var result = try await store.syncSchedules(specs, now: now, firstFire: { FirePlan.firstFire(of: $0, after: now) })
                result.removed.sort()
                return result
            }
        } else {
            self.now += TimeInterval(int(0...200))
            let now = self.now
            let fired = await both("fire") { try await $0.fireDueSchedules(now: now, grace: 5) }
            largestID = max(largestID, fired?.map(\.id).max() ?? 0)
        }
    }

    mutating func compareEverything(_ when: String) async {
        let now = self.now
        _ = await both("tasks \(when)") { try await $0.list(TaskFilter(limit: 100_000)).map(Normal.task) }
        for id in 1...max(1, largestID + 1) {
            _ = await both("attempts of \(id) \(when)") { try await $0.attempts(of: id) }
        }
        _ = await both("stats \(when)") { Normal.stats(try await $0.stats(now: now)) }
        _ = await both("batches \(when)") { try await $0.batches(limit: 100).map(Normal.batch) }
        for name in ["b1", "b2", "b3"] {
            _ = await both("status \(name) \(when)") { Normal.status(try await $0.batchStatus(name, now: now)) }
        }
        _ = await both("schedules \(when)") { try await $0.schedules() }
        _ = await both("next fire \(when)") { try await $0.nextScheduleFire() }
        _ = await both("workers \(when)") { try await $0.workers() }
        _ = await both("unhandled \(when)") { try await $0.unhandledTasks(now: now, batch: nil) }
        _ = await both("unhandled b1 \(when)") { try await $0.unhandledTasks(now: now, batch: 1) }
        _ = await both("unfinished \(when)") { try await $0.countUnfinished(queues: ["q1", "q2"], names: ["a"]) }
        _ = await both("next run \(when)") { Normal.date(try await $0.nextRunAt(queues: ["q1", "q2"], names: nil)) }
        _ = await both("list \(when)") {
            try await $0.list(TaskFilter(states: [.dead, .scheduled], queue: "q1", limit: 3, beforeID: 20)).map(Normal.task)
        }
    }
}

/// Values with what only the wall clock stamps (enqueue and batch instants) left out.
private enum Normal {
    static let start = Date(unixMillis: 4_102_444_800_000)

    /// An instant before the test's timeline (the wall clock) as one marker.
    static func date(_ date: Date?) -> Date? { date.map { $0 < start ? .distantPast : $0 } }

    static func task(_ task: TaskRecord) -> TaskRecord {
        var task = task
        task.runAt = date(task.runAt)!
        task.updatedAt = date(task.updatedAt)!
        task.createdAt = date(task.createdAt)!
        return task
    }

    static func turn(_ turn: ClaimTurn) -> ClaimTurn {
        var turn = turn
        for index in turn.claimed.indices { turn.claimed[index].runAt = date(turn.claimed[index].runAt)! }
        return turn
    }

    static func batch(_ batch: BatchRecord) -> BatchRecord {
        var batch = batch
        batch.createdAt = .distantPast
        batch.completedAt = batch.completedAt.map { _ in .distantPast }
        return batch
    }

    static func stats(_ stats: StoreStats) -> StoreStats {
        var stats = stats
        stats.oldestDueAt = date(stats.oldestDueAt)
        return stats
    }

    static func status(_ status: BatchStatus) -> BatchStatus {
        var status = status
        status.batch = batch(status.batch)
        return status
    }
}
