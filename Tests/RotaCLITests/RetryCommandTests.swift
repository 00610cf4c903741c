import Foundation
import Testing

@Suite("rota retry")
struct RetryCommandTests {
    @Test func aDeadTaskIsScheduledAgainDueNowWithOneMoreAttempt() async throws {
        let db = try await TempDatabase.seeded()
        let before = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 * 1000).rounded(.down) / 1000)
        let result = try await db.rota("retry", "71")
        let after = Date()
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "task 71 retried\n")
        let task = try await db.task(71)
        #expect(task["state"] as? String == "scheduled")
        #expect(task["max_attempts"] as? Int == 4)
        #expect(task["finished_at"] is NSNull)
        let runAt = try #require(instant(task["run_at"]))
        #expect(runAt >= before && runAt <= after, "due now: \(runAt) is not within the command's run")
        #expect(try await db.state(81) == "cancelled")
        #expect(try await db.rota("retry", "81").status == 0)
        #expect(try await db.state(81) == "scheduled")
    }

    @Test(arguments: [(1, "succeeded"), (86, "scheduled"), (99, "running")])
    func aTaskThatIsNotDeadOrCancelledIsLeftAsItWas(id: Int, state: String) async throws {
        let db = try await TempDatabase.seeded()
        let before = try await db.rota("show", String(id), "--json").stdout
        let result = try await db.rota("retry", String(id))
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("task \(id) not retried"))
        #expect(result.stderr.contains(state == "succeeded" ? "it succeeded" : "it is \(state)"))
        #expect(result.stderr.contains("only dead or cancelled tasks can be retried"))
        #expect(try await db.rota("show", String(id), "--json").stdout == before)
    }

    @Test func aMixedListRetriesTheRetryableAndFailsForTheRest() async throws {
        let db = try await TempDatabase.seeded()
        let result = try await db.rota("retry", "72", "2", "4242", "--json")
        #expect(result.status == 1)
        let outcomes = try result.objects()
        #expect(outcomes.compactMap { $0["status"] as? String } == ["retried", "refused", "not_found"])
        #expect(try await db.state(72) == "scheduled")
        #expect(try await db.state(2) == "succeeded")
    }

    @Test func stateDeadRetriesEveryDeadTaskOfAQueue() async throws {
        let db = try await TempDatabase.seeded()
        let result = try await db.rota("retry", "--state", "dead", "--queue", "q0")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "retried 2 dead tasks of queue q0\n")
        #expect(try await db.state(71) == "scheduled")
        #expect(try await db.state(76) == "scheduled")
        #expect(try await db.rota("list", "--state", "dead", "--json").objects().count == 8)
        let all = try await db.rota("retry", "--state", "dead", "--json").object()
        #expect(all["retried"] as? Int == 8)
        #expect(try await db.rota("list", "--state", "dead", "--json").objects().isEmpty)
    }

    @Test(arguments: [
        (["retry"], "ids"),
        (["retry", "--state", "running"], "only dead or cancelled"),
        (["retry", "--state", "bogus"], "unknown state"),
        (["retry", "1", "--state", "dead"], "not both"),
        (["retry", "71", "--queue", "q0"], "--queue goes with --state"),
        (["retry", "x"], "x"),
    ])
    func badUsageExitsTwoAndChangesNothing(arguments: [String], reason: String) async throws {
        let db = try await TempDatabase.seeded()
        let before = try await db.rota("list", "--all", "--json").stdout
        let result = try await db.rota(arguments: arguments)
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains(reason), "\(result)")
        #expect(try await db.rota("list", "--all", "--json").stdout == before)
    }
}
