import Foundation
import Testing

@Suite("rota cancel")
struct CancelCommandTests {
    @Test func aScheduledTaskIsCancelledAtOnce() throws {
        let db = try TempDatabase.seeded()
        let result = try db.rota("cancel", "86")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "task 86 cancelled\n")
        let task = try db.task(86)
        #expect(task["state"] as? String == "cancelled")
        #expect(instant(task["finished_at"]) != nil)
    }

    @Test func aRunningTaskIsAskedToStop() throws {
        let db = try TempDatabase.seeded()
        let result = try db.rota("cancel", "99", "--json")
        #expect(result.status == 0, "\(result)")
        #expect(try result.objects().first?["status"] as? String == "stop_requested")
        let task = try db.task(99)
        #expect(task["state"] as? String == "running")
        #expect(task["cancel_requested"] as? Bool == true)
        #expect(try db.rota("show", "99").stdout.contains("running (cancel requested)"))
    }

    @Test(arguments: [(1, "succeeded"), (71, "dead"), (81, "cancelled")])
    func aFinishedTaskIsLeftAsItWas(id: Int, state: String) throws {
        let db = try TempDatabase.seeded()
        let before = try db.rota("show", String(id), "--json").stdout
        let result = try db.rota("cancel", String(id))
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("task \(id) not cancelled: it is already \(state)"))
        #expect(try db.rota("show", String(id), "--json").stdout == before)
    }

    @Test func unknownAndMissingIDs() throws {
        let db = try TempDatabase.seeded()
        let unknown = try db.rota("cancel", "4242")
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no such task"))
        #expect(try db.rota("cancel").status == 2)
        #expect(try db.rota("cancel", "-5").status == 2)
    }
}
