import Foundation
import Testing

@Suite("rota retry")
struct RetryCommandTests {
    @Test func aDeadTaskIsScheduledAgainDueNowWithOneMoreAttempt() throws {
        let db = try TempDatabase.seeded()
        let result = try db.rota("retry", "71")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "task 71 retried\n")
        let task = try db.task(71)
        #expect(task["state"] as? String == "scheduled")
        #expect(task["max_attempts"] as? Int == 4)
        #expect(task["finished_at"] is NSNull)
        let runAt = try #require(instant(task["run_at"]))
        #expect(abs(runAt.timeIntervalSinceNow) < 60)
        #expect(try db.state(81) == "cancelled")
        #expect(try db.rota("retry", "81").status == 0)
        #expect(try db.state(81) == "scheduled")
    }

    @Test(arguments: [(1, "succeeded"), (86, "scheduled"), (99, "running")])
    func aTaskThatIsNotDeadOrCancelledIsLeftAsItWas(id: Int, state: String) throws {
        let db = try TempDatabase.seeded()
        let before = try db.rota("show", String(id), "--json").stdout
        let result = try db.rota("retry", String(id))
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("task \(id) not retried"))
        #expect(result.stderr.contains(state == "succeeded" ? "it succeeded" : "it is \(state)"))
        #expect(result.stderr.contains("only dead or cancelled tasks can be retried"))
        #expect(try db.rota("show", String(id), "--json").stdout == before)
    }

    @Test func aMixedListRetriesTheRetryableAndFailsForTheRest() throws {
        let db = try TempDatabase.seeded()
        let result = try db.rota("retry", "72", "2", "4242", "--json")
        #expect(result.status == 1)
        let outcomes = try result.objects()
        #expect(outcomes.compactMap { $0["status"] as? String } == ["retried", "refused", "not_found"])
        #expect(try db.state(72) == "scheduled")
        #expect(try db.state(2) == "succeeded")
    }

    @Test func stateDeadRetriesEveryDeadTaskOfAQueue() throws {
        let db = try TempDatabase.seeded()
        let result = try db.rota("retry", "--state", "dead", "--queue", "q0")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "retried 2 dead tasks of queue q0\n")
        #expect(try db.state(71) == "scheduled")
        #expect(try db.state(76) == "scheduled")
        #expect(try db.rota("list", "--state", "dead", "--json").objects().count == 8)
        let all = try db.rota("retry", "--state", "dead", "--json").object()
        #expect(all["retried"] as? Int == 8)
        #expect(try db.rota("list", "--state", "dead", "--json").objects().isEmpty)
    }

    @Test(arguments: [
        (["retry"], "ids"),
        (["retry", "--state", "running"], "only dead or cancelled"),
        (["retry", "--state", "bogus"], "unknown state"),
        (["retry", "1", "--state", "dead"], "not both"),
        (["retry", "71", "--queue", "q0"], "--queue goes with --state"),
        (["retry", "x"], "x"),
    ])
    func badUsageExitsTwoAndChangesNothing(arguments: [String], reason: String) throws {
        let db = try TempDatabase.seeded()
        let before = try db.rota("list", "--all", "--json").stdout
        let result = try db.rota(arguments: arguments)
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains(reason), "\(result)")
        #expect(try db.rota("list", "--all", "--json").stdout == before)
    }
}
