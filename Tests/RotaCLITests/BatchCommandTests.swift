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

    /// Two lines with one item identity are an input error (the second would be taken for the first and
    /// dropped); an unreadable file says why. Nothing is written in either case.
    @Test func aKeyUsedTwiceAndAMissingFileAreRefusedAndNothingIsWritten() async throws {
        let db = try TempDatabase()
        let items = db.directory.appendingPathComponent("dup.jsonl")
        try Data("""
            {"argv": ["true"], "key": "k"}
            {"argv": ["false"], "key": "k"}
            {"argv": ["true"], "key": "line:4"}
            {"argv": ["true"]}

            """.utf8).write(to: items)
        let refused = try await db.rota("batch", "submit", "--name", "d", items.path)
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("dup.jsonl:2: key \"k\" is already the key of line 1"), "\(refused)")
        #expect(refused.stderr.contains("dup.jsonl:4: this line's default key \"line:4\" is already the key of line 3"), "\(refused)")
        #expect(!FileManager.default.fileExists(atPath: db.path))
        let missing = try await db.rota("batch", "submit", "--name", "d", db.directory.appendingPathComponent("nope.jsonl").path)
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("nope.jsonl: no such file"), "\(missing)")
        #expect(!FileManager.default.fileExists(atPath: db.path))
    }

    /// A batch whose dead items are retried is running again, and `--watch` follows it (migration 8).
    @Test func aRetriedBatchIsRunningAgain() async throws {
        let db = try TempDatabase()
        let items = db.directory.appendingPathComponent("items.jsonl")
        try Data(#"{"argv": ["false"]}"#.appending("\n").utf8).write(to: items)
        let submitted = try await db.rota("batch", "submit", "--name", "b", "--max-attempts", "1", items.path)
        #expect(submitted.stdout.contains("1 item, 1 added"), "\(submitted)")
        #expect(try await db.rota("run", "--until-empty", "--durability", "normal").status == 0)
        #expect(try await db.rota("batch", "status", "b").stdout.hasPrefix("batch b (complete"))
        #expect(try await db.rota("batch", "retry", "b").status == 0)
        let status = try await db.rota("batch", "status", "b", "--json").object()
        #expect(status["completed_at"] is NSNull)
        #expect(status["finished"] as? Int == 0)
        #expect(try await db.rota("batch", "status", "b").stdout.hasPrefix("batch b (running"))
    }
}
