import Foundation
import Testing

@Suite("rota workers")
struct WorkersCommandTests {
    @Test func noWorkersYet() async throws {
        let db = try await TempDatabase.seeded()
        let human = try await db.rota("workers")
        #expect(human.status == 0)
        #expect(human.stdout == "No workers have run on this database.\n")
        #expect(try await db.rota("workers", "--json").objects().isEmpty)
    }

    @Test func aWorkerThatStoppedCleanlyIsStopped() async throws {
        let db = try TempDatabase()
        #expect(try await db.rota("_dev", "churn", "--seconds", "0.1", "--worker", "w-test").status == 0)
        let workers = try await db.rota("workers", "--json").objects()
        #expect(workers.count == 1)
        let worker = workers[0]
        for field in ["id", "host", "pid", "status", "live", "queues", "task_names", "concurrency", "started_at",
                      "heartbeat_at", "stopped_at"] {
            #expect(worker.keys.contains(field), "missing \(field)")
        }
        #expect(worker["id"] as? String == "w-test")
        #expect(worker["status"] as? String == "stopped")
        #expect(worker["live"] as? Bool == false)
        #expect(worker["queues"] as? [String] == ["churn"])
        #expect(instant(worker["heartbeat_at"]) != nil)
        #expect(instant(worker["stopped_at"]) != nil)
        let human = try await db.rota("workers", environment: ["COLUMNS": "200"])
        #expect(human.lines.count == 2)
        #expect(human.lines[0].hasPrefix("ID"))
        #expect(human.lines[0].contains("HEARTBEAT"))
        #expect(human.lines[1].hasPrefix("w-test"))
        #expect(human.lines[1].contains("stopped"))
        #expect(human.lines[1].hasSuffix("now") || human.lines[1].hasSuffix("ago"), "relative heartbeat: \(human.lines[1])")
        #expect(try await db.rota("workers", "--live", "--json").objects().isEmpty)
    }

    @Test func aWorkerHeartbeatingIsLiveAndAKilledOneGoesDead() async throws {
        let db = try TempDatabase()
        #expect(try await db.rota("migrate").status == 0)
        let churn = try Rota.start(["_dev", "churn", "--seconds", "3600", "--worker", "w-live", "--db", db.path])  // killed below
        defer { if churn.process.isRunning { churn.process.terminate() } }
        let live = try await waitFor(timeout: .seconds(120)) { () -> [String: Any]? in
            try await db.rota("workers", "--json").objects().first { $0["status"] as? String == "live" }
        }
        #expect(live["id"] as? String == "w-live")
        #expect(live["live"] as? Bool == true)
        #expect(live["stopped_at"] is NSNull)
        let stats = try await db.rota("stats", "--json").object()
        #expect((stats["workers"] as? [String: Int])?["live"] == 1)
        #expect((stats["live_workers"] as? [[String: Any]])?.first?["id"] as? String == "w-live")
        kill(churn.process.processIdentifier, SIGKILL)
        _ = try await churn.finish()
        // Without a stop, it stays live until its heartbeat is older than the liveness window.
        let worker = try await db.rota("workers", "--json").objects()[0]
        #expect(worker["stopped_at"] is NSNull)
        #expect(["live", "dead"].contains(worker["status"] as? String ?? ""))
    }
}

@Suite("worker liveness")
struct WorkerLivenessTests {
    @Test func statusFollowsTheHeartbeatAgeAndTheStop() async throws {
        let db = try await TempDatabase.seeded()
        // Live means a heartbeat within the last 30 s: w-live's is fresh, so the checks below have 30 s to run.
        try await db.rota("_dev", "worker", "--id", "w-live", "--names", "bench.5,bench.6", "--heartbeat-ago", "0s")
        try await db.rota("_dev", "worker", "--id", "w-dead", "--names", "bench.7", "--heartbeat-ago", "2m")
        try await db.rota("_dev", "worker", "--id", "w-stopped", "--names", "bench.8", "--heartbeat-ago", "1s", "--stopped")
        let workers = try await db.rota("workers", "--json").objects()
        let status = Dictionary(uniqueKeysWithValues: workers.map { ($0["id"] as? String ?? "", $0["status"] as? String ?? "") })
        #expect(status == ["w-live": "live", "w-dead": "dead", "w-stopped": "stopped"])
        #expect(try await db.rota("workers", "--live", "--json").objects().compactMap { $0["id"] as? String } == ["w-live"])
        let human = try await db.rota("workers", environment: ["COLUMNS": "200"])
        #expect(human.lines.count == 4)
        #expect(human.lines.contains { $0.hasPrefix("w-dead") && $0.contains(" dead ") && $0.contains(#/\s[2-9]m ago$/#) })

        // Only the live worker's names are handled: the dead and the stopped ones' are not.
        let stats = try await db.rota("stats", "--json").object()
        let unhandled = (stats["unhandled_names"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(!unhandled.contains("bench.5") && !unhandled.contains("bench.6"))
        #expect(unhandled.contains("bench.7") && unhandled.contains("bench.8"))
        #expect(stats["workers"] as? [String: Int] == ["live": 1, "dead": 1, "stopped": 1])
        let text = try await db.rota("stats").stdout
        #expect(!text.contains("no live worker handles bench.5 "))
        #expect(text.contains("no live worker handles bench.7 (1 scheduled)"))
        #expect(text.contains("Workers  1 live, 1 dead"))
    }
}

/// Polls `body` every 50 ms until it returns a value, or throws after `timeout`.
func waitFor<T>(timeout: Duration, _ body: () async throws -> T?) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let value = try await body() { return value }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestFailure("condition not met within \(timeout)")
}
