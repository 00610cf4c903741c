import Foundation
import Testing

@Suite("rota stats")
struct StatsCommandTests {
    @Test func jsonHasCountsPerStateAndQueue() throws {
        let db = try TempDatabase.seeded()
        let stats = try db.rota("stats", "--json").object()
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

    @Test func humanOutputSaysWhatNoLiveWorkerHandles() throws {
        let db = try TempDatabase.seeded()
        let result = try db.rota("stats", environment: ["COLUMNS": "100"])
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

    @Test func anEmptyDatabaseHasZeroesEverywhere() throws {
        let db = try TempDatabase()
        #expect(try db.rota("migrate").status == 0)
        let stats = try db.rota("stats", "--json").object()
        #expect(stats["states"] as? [String: Int] == ["succeeded": 0, "dead": 0, "cancelled": 0, "scheduled": 0, "running": 0])
        #expect(stats["oldest_due_at"] is NSNull)
        #expect((stats["queues"] as? [String: Any])?.isEmpty == true)
        #expect(try db.rota("stats").stdout.contains("nothing is due"))
    }

    @Test func throughputCountsRecentlyFinishedTasks() throws {
        let db = try TempDatabase()
        let churn = try db.rota("_dev", "churn", "--seconds", "0.3", "--batch", "10")
        #expect(churn.status == 0)
        let stats = try db.rota("stats", "--json").object()
        let throughput = try #require(stats["throughput"] as? [String: Int])
        let states = try #require(stats["states"] as? [String: Int])
        #expect(throughput["last_minute"] == (states["succeeded"] ?? 0) + (states["dead"] ?? 0))
        #expect((throughput["last_minute"] ?? 0) > 0)
        #expect(throughput["last_hour"] == throughput["last_minute"])
        #expect(stats["workers"] as? [String: Int] == ["live": 0, "dead": 0, "stopped": 1])
    }
}
