import Foundation
import Testing

@Suite("rota stats")
struct StatsCommandTests {
    @Test func jsonHasCountsPerStateAndQueue() async throws {
        let db = try await TempDatabase.seeded()
        let stats = try await db.rota("stats", "--json").object()
        let states = try #require(stats["states"] as? [String: Int])
        #expect(states == ["succeeded": 70, "dead": 10, "cancelled": 5, "scheduled": 13, "running": 2])
        #expect(stats["total"] as? Int == 100)
        let queues = try #require(stats["queues"] as? [String: [String: Int]])
        #expect(queues.keys.sorted() == ["q0", "q1", "q2", "q3", "q4"])
        #expect(queues.values.allSatisfy { Set($0.keys) == Set(states.keys) && $0.values.reduce(0, +) == 20 })
        #expect(queues["q0"]?["dead"] == 2)  // ids 71 and 76
        let throughput = try #require(stats["throughput"] as? [String: Int])
        #expect(throughput["last_minute"] == 0)
        #expect(throughput["last_hour"] == 0)
        #expect(instant(stats["oldest_due_at"]) != nil)
        #expect((stats["oldest_due_age_ms"] as? Int ?? 0) > 3_600_000)
        #expect(stats["workers"] as? [String: Int] == ["live": 0, "dead": 0, "stopped": 0])
        let unhandled = try #require(stats["unhandled_names"] as? [[String: Any]])
        #expect(unhandled.reduce(0) { $0 + ($1["scheduled"] as? Int ?? 0) } == 13)
    }

    @Test func humanOutputSaysWhatNoLiveWorkerHandles() async throws {
        let db = try await TempDatabase.seeded()
        let result = try await db.rota("stats", environment: ["COLUMNS": "100"])
        #expect(result.status == 0)
        let text = result.stdout
        #expect(text.contains("Tasks  100 in all"))
        #expect(text.contains("Queues"))
        #expect(text.contains("SCHEDULED"))
        #expect(text.contains("Oldest due  "))
        #expect(text.contains("Throughput  0 finished in the last minute, 0 in the last hour"))
        #expect(text.contains("Workers  0 live"))
        #expect(text.contains("no live worker handles bench.5 (1 scheduled)"), "\(text)")
        #expect(text.split(separator: "\n").allSatisfy { $0.count <= 100 })
        #expect(!hasANSI(text))
    }

    @Test func anEmptyDatabaseHasZeroesEverywhere() async throws {
        let db = try TempDatabase()
        #expect(try await db.rota("migrate").status == 0)
        let stats = try await db.rota("stats", "--json").object()
        #expect(stats["states"] as? [String: Int] == ["succeeded": 0, "dead": 0, "cancelled": 0, "scheduled": 0, "running": 0])
        #expect(stats["oldest_due_at"] is NSNull)
        #expect((stats["queues"] as? [String: Any])?.isEmpty == true)
        #expect(try await db.rota("stats").stdout.contains("nothing is due"))
    }

    @Test func throughputCountsRecentlyFinishedTasks() async throws {
        let db = try TempDatabase()
        let started = Date()
        let churn = try await db.rota("_dev", "churn", "--seconds", "0.3", "--batch", "10")
        #expect(churn.status == 0)
        let stats = try await db.rota("stats", "--json").object()
        let elapsed = Date().timeIntervalSince(started)
        let throughput = try #require(stats["throughput"] as? [String: Int])
        let states = try #require(stats["states"] as? [String: Int])
        let finished = (states["succeeded"] ?? 0) + (states["dead"] ?? 0)
        #expect(finished > 0)
        // Every task finished after `started`: all in the last hour, and in the last minute when `stats` ran
        // within a minute of it (how long these commands take is not assumed).
        #expect(throughput["last_hour"] == finished)
        if elapsed < 60 { #expect(throughput["last_minute"] == finished) } else { #expect((throughput["last_minute"] ?? 0) <= finished) }
        #expect(stats["workers"] as? [String: Int] == ["live": 0, "dead": 0, "stopped": 1])
    }

    /// A name a live worker handles, but only in another queue: the warning names the queue, and
    /// `unhandled` (beside `unhandled_names`) gives each queue and name with its reason.
    @Test func warnsAboutAQueueNoLiveWorkerServes() async throws {
        let db = try TempDatabase()
        #expect(try await db.rota("enqueue", "exec", "--queue", "reports", "--payload", #"{"argv": ["true"]}"#).status == 0)
        #expect(try await db.rota("enqueue", "ghost").status == 0)
        #expect(try await db.rota("_dev", "worker", "--id", "w1", "--queues", "default", "--names", "exec").status == 0)
        let text = try await db.rota("stats").stdout
        #expect(text.contains("warning: no live worker that handles exec serves queue reports (1 scheduled)"), "\(text)")
        #expect(text.contains("warning: no live worker handles ghost (1 scheduled)"), "\(text)")
        let stats = try await db.rota("stats", "--json").object()
        let unhandled = try #require(stats["unhandled"] as? [[String: Any]])
        #expect(unhandled.map { "\($0["queue"] ?? "")/\($0["name"] ?? "")/\($0["scheduled"] ?? "")/\($0["reason"] ?? "")" }
                == ["default/ghost/1/no_worker_handles_name", "reports/exec/1/no_worker_serves_queue"])
        #expect((stats["unhandled_names"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["ghost"])
    }
}
