import Foundation
import Testing

@Suite("rota cancel")
struct CancelCommandTests {
    @Test func aScheduledTaskIsCancelledAtOnce() async throws {
        let db = try await TempDatabase.seeded()
        let result = try await db.rota("cancel", "86")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "task 86 cancelled\n")
        let task = try await db.task(86)
        #expect(task["state"] as? String == "cancelled")
        #expect(instant(task["finished_at"]) != nil)
    }

    @Test func aRunningTaskIsAskedToStop() async throws {
        let db = try await TempDatabase.seeded()
        let result = try await db.rota("cancel", "99", "--json")
        #expect(result.status == 0, "\(result)")
        #expect(try result.objects().first?["status"] as? String == "stop_requested")
        let task = try await db.task(99)
        #expect(task["state"] as? String == "running")
        #expect(task["cancel_requested"] as? Bool == true)
        #expect(try await db.rota("show", "99").stdout.contains("running (cancel requested)"))
    }

    @Test(arguments: [(1, "succeeded"), (71, "dead"), (81, "cancelled")])
    func aFinishedTaskIsLeftAsItWas(id: Int, state: String) async throws {
        let db = try await TempDatabase.seeded()
        let before = try await db.rota("show", String(id), "--json").stdout
        let result = try await db.rota("cancel", String(id))
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("task \(id) not cancelled: it is already \(state)"))
        #expect(try await db.rota("show", String(id), "--json").stdout == before)
    }

    @Test func unknownAndMissingIDs() async throws {
        let db = try await TempDatabase.seeded()
        let unknown = try await db.rota("cancel", "4242")
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no such task"))
        #expect(try await db.rota("cancel").status == 2)
        #expect(try await db.rota("cancel", "-5").status == 2)
    }
}
