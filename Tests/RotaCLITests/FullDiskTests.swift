import Foundation
import Testing

/// A write that meets a full disk, or here the file size limit (`ulimit -f`, the same failure on any
/// machine), is told in words: which file, why, what was written and what was not, and that the same
/// command run again resumes. Before, it was `SQLITE_IOERR (778): disk I/O error — in: COMMIT`, or the
/// process died of SIGXFSZ with no message at all.
@Suite("A full disk")
struct FullDiskTests {
    /// 30,000 items of about 140 bytes: three 10,000-item transactions of about 3 MB each.
    private static let items: Data = {
        var text = ""
        for item in 0..<30_000 {
            text += #"{"argv": ["echo", "item-\#(item)", "\#(String(repeating: "x", count: 100))"]}"# + "\n"
        }
        return Data(text.utf8)
    }()

    @Test func batchSubmitPastTheFileSizeLimitSaysHowFarItGotAndResumesWhenRunAgain() async throws {
        let db = try TempDatabase()
        let file = db.directory.appendingPathComponent("items.jsonl")
        try Self.items.write(to: file)
        // 4 MiB: the first transaction fits, the whole batch (about 9 MB with its WAL) does not.
        let full = try await db.rota(arguments: ["batch", "submit", "--name", "nightly", file.path], fileSizeLimit: 4 << 20)
        #expect(full.status == 1, "\(full)")
        #expect(full.stdout.isEmpty, "\(full)")
        // The file that reached the limit is named, with the limit.
        #expect(full.stderr.contains(/rota: cannot write to \/.*rota\.db(-wal)?: it reached the largest size this process may write, 4194304 bytes \(the file size limit, `ulimit -f`\)/),
                "\(full)")
        #expect(full.stderr.contains("errno 27"), "\(full)")
        #expect(full.stderr.contains("run the same command again"), "\(full)")
        // "N of 30000 items were committed before the failure": some, not all, and exactly those are stored.
        let match = try #require(full.stderr.firstMatch(of: /batch nightly: (\d+) of 30000 items were committed before the failure \((\d+) added by this run\); the other (\d+) were not written/),
                                 "\(full)")
        let committed = try #require(Int(match.1))
        #expect(committed > 0 && committed < 30_000)
        #expect(Int(match.2) == committed)
        #expect(Int(match.3) == 30_000 - committed)
        let status = try await db.rota("batch", "status", "nightly", "--json").object()
        #expect(status["total"] as? Int == committed)
        #expect(status["sealed"] as? Bool == false)

        // The same command, with room: only the missing items are added, and the batch is sealed.
        let resumed = try await db.rota("batch", "submit", "--name", "nightly", file.path)
        #expect(resumed.status == 0, "\(resumed)")
        #expect(resumed.stdout.contains("30000 items, \(30_000 - committed) added, \(committed) already present"), "\(resumed)")
        let after = try await db.rota("batch", "status", "nightly", "--json").object()
        #expect(after["total"] as? Int == 30_000)
        #expect(after["sealed"] as? Bool == true)
        #expect(try await db.rota("check").status == 0)
    }

    @Test func enqueuePastTheFileSizeLimitSaysNothingWasWritten() async throws {
        let db = try TempDatabase()
        #expect(try await db.enqueue("first") == 1)
        let payload = db.directory.appendingPathComponent("payload.json")
        try Data((#"{"blob": ""# + String(repeating: "y", count: 900_000) + #""}"#).utf8).write(to: payload)
        let full = try await db.rota(arguments: ["enqueue", "big", "--payload", "@" + payload.path], fileSizeLimit: 512 << 10)
        #expect(full.status == 1, "\(full)")
        #expect(full.stdout.isEmpty)
        #expect(full.stderr.contains("rota: cannot write to \(db.path)-wal: it reached the largest size this process may write, 524288 bytes"),
                "\(full)")
        #expect(full.stderr.contains("errno 27"), "\(full)")
        #expect(full.stderr.contains("nothing was written: the task was not enqueued"), "\(full)")
        #expect(full.stderr.contains("run the same command again"), "\(full)")
        #expect(try await db.rota("list", "--json").objects().count == 1)
        #expect(try await db.enqueue("big", "--payload", "@" + payload.path) == 2)
        #expect(try await db.rota("check").status == 0)
    }

    /// Other writing commands get the general words: the failed transaction was rolled back.
    @Test func migrateIntoAFileThatCannotGrowIsToldInWords() async throws {
        let db = try TempDatabase()
        let full = try await db.rota(arguments: ["migrate"], fileSizeLimit: 8 << 10)
        #expect(full.status == 1, "\(full)")
        #expect(full.stderr.contains("rota: cannot write to \(db.path)"), "\(full)")
        #expect(full.stderr.contains("the transaction that failed was rolled back"), "\(full)")
        #expect(!full.stderr.contains("SIGXFSZ"))
        let migrated = try await db.rota("migrate")
        #expect(migrated.status == 0, "\(migrated)")
        #expect(try await db.rota("check").status == 0)
    }
}
