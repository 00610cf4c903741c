import Foundation
import Testing

@Suite("rota batch retry and cancel")
struct BatchCommandTests {
    /// `batch retry` and `batch cancel` print what they did, in words and with --json; an unknown batch exits 1.
    @Test func retryAndCancelReportWhatTheyDidAsTextAndJSON() async throws {
        let db = try TempDatabase()
        let items = db.directory.appendingPathComponent("items.jsonl")
        try Data(String(repeating: #"{"argv": ["false"]}"# + "\n", count: 3).utf8).write(to: items)
        let submit = try await db.rota("batch", "submit", "--name", "b", "--max-attempts", "1", items.path)
        #expect(submit.status == 0, "\(submit)")
        let run = try await db.rota("run", "--until-empty", "--durability", "normal")
        #expect(run.status == 0, "\(run)")

        let retried = try await db.rota("batch", "retry", "b", "--json")
        #expect(retried.status == 0, "\(retried)")
        let retriedObject = try retried.object()
        #expect(retriedObject["batch"] as? String == "b")
        #expect(retriedObject["rescheduled"] as? Int == 3)
        let cancelled = try await db.rota("batch", "cancel", "b", "--json")
        #expect(cancelled.status == 0, "\(cancelled)")
        let cancelledObject = try cancelled.object()
        #expect(cancelledObject["cancelled"] as? Int == 3)
        #expect(cancelledObject["requested"] as? Int == 0)
        #expect(try await db.rota("batch", "retry", "b").stdout == "batch b: 0 dead items scheduled again\n")
        #expect(try await db.rota("batch", "cancel", "b").stdout == "batch b: 0 cancelled, 0 running asked to stop\n")

        let missing = try await db.rota("batch", "retry", "nope", "--json")
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no batch named nope"), "\(missing)")
    }

    /// Items that wait for a worker are named in `batch status`, as text and in `--json` (`unhandled`).
    @Test func statusSaysWhichItemsNoLiveWorkerCanRun() async throws {
        let db = try TempDatabase()
        let items = db.directory.appendingPathComponent("items.jsonl")
        try Data(#"{"argv": ["true"]}"# .appending("\n").appending(#"{"name": "ghost", "payload": {}}"#).appending("\n").utf8).write(to: items)
        #expect(try await db.rota("batch", "submit", "--name", "b", items.path).status == 0)
        let before = try await db.rota("batch", "status", "b", "--json").object()
        #expect((before["unhandled"] as? [[String: Any]])?.count == 2)
        #expect(try await db.rota("_dev", "worker", "--id", "w1", "--queues", "default", "--names", "exec").status == 0)
        let text = try await db.rota("batch", "status", "b").stdout
        #expect(text.contains("warning: no live worker handles ghost (1 scheduled in queue default)"), "\(text)")
        #expect(!text.contains("handles exec"), "\(text)")
        let after = try await db.rota("batch", "status", "b", "--json").object()
        let unhandled = try #require(after["unhandled"] as? [[String: Any]])
        #expect(unhandled.count == 1)
        #expect(unhandled.first?["name"] as? String == "ghost")
        #expect(unhandled.first?["reason"] as? String == "no_worker_handles_name")
        #expect(unhandled.first?["scheduled"] as? Int == 1)
    }
}
