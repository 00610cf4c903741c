import Foundation
import Testing

@Suite("rota purge")
struct PurgeCommandTests {
    @Test func purgesFinishedTasksOlderThanTheDurationOnly() throws {
        let db = try TempDatabase.seeded()
        let before = try db.rota("list", "--all", "--json").objects()
        let cutoff = Date().addingTimeInterval(-7 * 86_400)
        let expected = before.filter { task in
            guard let finished = instant(task["finished_at"]) else { return false }
            return finished < cutoff
        }.count
        #expect(expected > 50)
        let result = try db.rota("purge", "--older-than", "7d", "--json")
        #expect(result.status == 0, "\(result)")
        #expect(try result.object()["purged"] as? Int == expected)
        let after = try db.rota("list", "--all", "--json").objects()
        #expect(after.count == 100 - expected)
        #expect(after.filter { $0["state"] as? String == "scheduled" }.count == 13)
        #expect(after.filter { $0["state"] as? String == "running" }.count == 2)
        #expect(after.allSatisfy { instant($0["finished_at"]).map { $0 >= cutoff } ?? true })
    }

    @Test func stateLimitsWhatIsPurged() throws {
        let db = try TempDatabase.seeded()
        let result = try db.rota("purge", "--older-than", "0s", "--state", "dead")
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("purged 10 tasks finished before "))
        let states = try db.rota("stats", "--json").object()["states"] as? [String: Int]
        #expect(states == ["succeeded": 70, "dead": 0, "cancelled": 5, "scheduled": 13, "running": 2])
        #expect(try db.rota("show", "71").status == 1)
    }

    @Test func purgingEverythingNeverTouchesScheduledOrRunningTasks() throws {
        let db = try TempDatabase.seeded()
        #expect(try db.rota("purge", "--older-than", "0s").status == 0)
        let states = try db.rota("stats", "--json").object()["states"] as? [String: Int]
        #expect(states == ["succeeded": 0, "dead": 0, "cancelled": 0, "scheduled": 13, "running": 2])
    }

    @Test(arguments: [
        (["purge"], "older-than"),
        (["purge", "--older-than", "7 days"], "--older-than"),
        (["purge", "--older-than", "0s", "--state", "scheduled"], "never purged"),
        (["purge", "--older-than", "0s", "--state", "running"], "never purged"),
        (["purge", "--older-than", "0s", "--state", "finished"], "unknown state"),
    ])
    func badArgumentsExitTwoAndDeleteNothing(arguments: [String], reason: String) throws {
        let db = try TempDatabase.seeded()
        let result = try db.rota(arguments: arguments)
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains(reason), "\(result)")
        #expect(try db.rota("list", "--all", "--json").objects().count == 100)
    }
}
