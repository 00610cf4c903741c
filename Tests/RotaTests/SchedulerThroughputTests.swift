import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore

/// End-to-end rate of no-op tasks: enqueue a backlog in bulk, run it with the async executor until every
/// task is `succeeded` with its attempt row. A measurement, not an assertion: opt in with ROTA_BENCH=1
/// (ROTA_BENCH_TASKS, ROTA_BENCH_CONCURRENCY, ROTA_BENCH_SCHEDULERS, ROTA_BENCH_DURABILITY=full|normal) and
/// build in release: `swift test -c release -Xswiftc -enable-testing --filter SchedulerThroughput`.
@Suite("Scheduler throughput", .enabled(if: ProcessInfo.processInfo.environment["ROTA_BENCH"] == "1"))
struct SchedulerThroughputTests {
    @Test func noopEndToEndRate() async throws {
        let env = ProcessInfo.processInfo.environment
        let count = Int(env["ROTA_BENCH_TASKS"] ?? "") ?? 200_000
        let concurrency = Int(env["ROTA_BENCH_CONCURRENCY"] ?? "") ?? 512
        let schedulerCount = Int(env["ROTA_BENCH_SCHEDULERS"] ?? "") ?? 1
        let durability: Durability = env["ROTA_BENCH_DURABILITY"] == "full" ? .full : .normal
        let db = try TempDatabase()
        let store = try db.store(durability)
        let enqueueStart = ContinuousClock.now
        var specs: [TaskSpec] = []
        specs.reserveCapacity(10_000)
        for index in 0..<count {
            specs.append(TaskSpec(name: "noop"))
            if specs.count == 10_000 || index == count - 1 {
                _ = try await store.enqueue(specs)
                specs.removeAll(keepingCapacity: true)
            }
        }
        let enqueueTime = ContinuousClock.now - enqueueStart
        var schedulers: [Scheduler] = []
        for _ in 0..<schedulerCount {
            var configuration = Scheduler.Configuration(queues: ["default": concurrency], untilEmpty: true)
            configuration.pollInterval = .milliseconds(20)
            let scheduler = Scheduler(store: try db.store(durability), configuration: configuration, logger: testLogger)
            try scheduler.register("noop") { (_: Empty, _) in Empty() }
            schedulers.append(scheduler)
        }
        let all = schedulers
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for scheduler in all { group.addTask { try await scheduler.run() } }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        let stats = try await store.stats(now: Date())
        #expect(stats.states[.succeeded] == count)
        let rate = Double(count) / elapsed.seconds
        print("e2e_noop tasks=\(count) schedulers=\(schedulerCount) concurrency=\(concurrency) durability=\(durability) "
              + "seconds=\(String(format: "%.3f", elapsed.seconds)) rate=\(Int(rate))/s "
              + "bulk_enqueue_rate=\(Int(Double(count) / enqueueTime.seconds))/s")
    }
}

extension SchedulerThroughputTests {
    /// The store alone: claim and complete in batches on one thread, as the engine does.
    @Test func storeClaimCompleteRate() async throws {
        let count = Int(ProcessInfo.processInfo.environment["ROTA_BENCH_TASKS"] ?? "") ?? 100_000
        let batch = 256
        let db = try TempDatabase()
        let store = try db.store(.normal)
        for _ in 0..<(count / 10_000) { _ = try store.enqueueSync((0..<10_000).map { _ in TaskSpec(name: "noop") }) }
        var claimTime = Duration.zero, completeTime = Duration.zero
        let clock = ContinuousClock()
        while true {
            let t0 = clock.now
            let claimed = try store.claimSync([ClaimRequest(queue: "default", names: ["noop"], limit: batch)], worker: "w",
                                              leaseUntil: Date().addingTimeInterval(60), now: Date())
            let t1 = clock.now
            if claimed.isEmpty { break }
            let now = Date()
            let completions = claimed.map {
                Completion(taskID: $0.id, attempt: $0.attempt, worker: "w", startedAt: $0.startedAt, finishedAt: now,
                           resolution: .succeeded(result: nil))
            }
            if ProcessInfo.processInfo.environment["ROTA_BENCH_SLOW_COMPLETE"] == "1" {
                _ = try store.completeSync(completions)
            } else {
                _ = try store.completeSync(completions)
            }
            claimTime += t1 - t0
            completeTime += clock.now - t1
        }
        print("store_lifecycle tasks=\(count) batch=\(batch) claim_us=\(claimTime.seconds * 1e6 / Double(count)) "
              + "complete_us=\(completeTime.seconds * 1e6 / Double(count)) rate=\(Int(Double(count) / (claimTime + completeTime).seconds))/s")
    }
}
