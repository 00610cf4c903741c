import Foundation
import Testing

@Suite("rota show")
struct ShowCommandTests {
    @Test func humanOutputHasTheTaskPayloadAttemptsAndResult() throws {
        let db = try TempDatabase.seeded()
        let result = try db.rota("show", "1", environment: ["COLUMNS": "120"])
        #expect(result.status == 0, "\(result)")
        let text = result.stdout
        #expect(text.hasPrefix("Task 1  bench.0  succeeded\n"), "\(text)")
        #expect(text.contains("  queue       q0\n"))
        #expect(text.contains("  attempts    1 of 3\n"))
        #expect(text.contains("Payload\n  {\"n\":0}\n"))
        #expect(text.contains("Attempts\n"))
        #expect(text.contains("bench-worker"))
        #expect(text.contains("1.9s"), "the attempt's duration")
        #expect(text.contains("Result\n  {\"ok\":true}\n"))
        #expect(!hasANSI(text))
        let dead = try db.rota("show", "71").stdout
        #expect(dead.contains("  last error  synthetic failure 70\n"))
        #expect(dead.contains("failed"))
        let cancelled = try db.rota("show", "81").stdout
        #expect(cancelled.contains("Attempts  none finished yet"))
    }

    @Test func jsonAddsTheAttemptsLog() throws {
        let db = try TempDatabase.seeded()
        let task = try db.rota("show", "71", "--json").object()
        for field in taskFields + ["attempts_log"] { #expect(task.keys.contains(field), "missing \(field)") }
        #expect(task["state"] as? String == "dead")
        let log = try #require(task["attempts_log"] as? [[String: Any]])
        #expect(log.count == 1)
        let attempt = log[0]
        for field in ["attempt", "worker", "started_at", "finished_at", "outcome", "error", "result"] {
            #expect(attempt.keys.contains(field), "missing \(field)")
        }
        #expect(attempt["attempt"] as? Int == 3)
        #expect(attempt["worker"] as? String == "bench-worker")
        #expect(attempt["outcome"] as? String == "failed")
        #expect(attempt["error"] as? String == "synthetic failure 70")
        #expect(attempt["result"] is NSNull)
        let started = try #require(instant(attempt["started_at"]))
        let finished = try #require(instant(attempt["finished_at"]))
        #expect(abs(finished.timeIntervalSince(started) - 1.99) < 0.001)
        let succeeded = try db.rota("show", "1", "--json").object()
        let first = try #require((succeeded["attempts_log"] as? [[String: Any]])?.first)
        #expect((first["result"] as? [String: Any])?["ok"] as? Bool == true)
        #expect(first["outcome"] as? String == "succeeded")
    }

    @Test func everyAttemptOfARetriedTaskIsListed() throws {
        let db = try TempDatabase()
        // The simulated worker fails churn.fail tasks twice (max 2 attempts): they end dead with two attempts.
        let churn = try db.rota("_dev", "churn", "--seconds", "0.2", "--batch", "5")
        #expect(churn.status == 0, "\(churn)")
        let dead = try db.rota("list", "--state", "dead", "--limit", "1", "--json").objects()
        let id = try #require(dead.first?["id"] as? Int)
        let log = try #require(try db.task(id)["attempts_log"] as? [[String: Any]])
        #expect(log.compactMap { $0["attempt"] as? Int } == [1, 2])
        #expect(log.allSatisfy { $0["outcome"] as? String == "failed" && $0["error"] as? String == "simulated failure" })
        let human = try db.rota("show", String(id), environment: ["COLUMNS": "150"]).stdout
        #expect(human.contains("simulated failure"))
        #expect(human.components(separatedBy: "failed").count - 1 >= 2, "\(human)")
    }

    @Test func anUnknownIDFailsAndABadOneIsBadUsage() throws {
        let db = try TempDatabase.seeded()
        let missing = try db.rota("show", "4242")
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no task 4242"))
        let bad = try db.rota("show", "forty-two")
        #expect(bad.status == 2)
        let none = try db.rota("show")
        #expect(none.status == 2)
    }
}
