import Foundation
import Testing

@Suite("rota enqueue")
struct EnqueueCommandTests {
    @Test func printsTheNewIDAndCreatesTheDatabase() async throws {
        let db = try TempDatabase()
        let result = try await db.rota("enqueue", "email.send", "--payload", #"{"to": "a@b.c", "n": [1, 2]}"#, "--queue", "mail",
                                 "--priority", "5", "--max-attempts", "4", "--timeout", "1m30s")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "1\n")
        #expect(FileManager.default.fileExists(atPath: db.path))
        let task = try await db.task(1)
        #expect(task["name"] as? String == "email.send")
        #expect(task["queue"] as? String == "mail")
        #expect(task["state"] as? String == "scheduled")
        #expect(task["priority"] as? Int == 5)
        #expect(task["max_attempts"] as? Int == 4)
        #expect(task["timeout_ms"] as? Int == 90_000)
        let payload = try #require(task["payload"] as? [String: Any])
        #expect(payload["to"] as? String == "a@b.c")
        #expect(payload["n"] as? [Int] == [1, 2])
        #expect(try await db.enqueue("other") == 2)
    }

    @Test func execShorthandEnqueuesTheCommandAsArgv() async throws {
        let db = try TempDatabase()
        // Everything after `--` is the command, options included.
        let result = try await Rota.run(["enqueue", "--db", db.path, "--exec", "--", "echo", "hello world", "-n", "--db", "x"])
        #expect(result.status == 0, "\(result)")
        let task = try await db.task(1)
        #expect(task["name"] as? String == "exec")
        let payload = try #require(task["payload"] as? [String: Any])
        #expect(payload["argv"] as? [String] == ["echo", "hello world", "-n", "--db", "x"])
    }

    @Test func execWithoutACommandIsBadUsage() async throws {
        let db = try TempDatabase()
        let result = try await db.rota("enqueue", "--exec")
        #expect(result.status == 2)
        #expect(result.stderr.contains("--exec needs a command"))
        #expect(!FileManager.default.fileExists(atPath: db.path))
    }

    @Test func aKnownUniqueKeyReturnsTheExistingTaskAndSaysSo() async throws {
        let db = try TempDatabase()
        let first = try await db.rota("enqueue", "report.build", "--unique", "report-2026-12")
        #expect(first.status == 0)
        #expect(first.stderr.isEmpty)
        let second = try await db.rota("enqueue", "report.build", "--unique", "report-2026-12", "--payload", #"{"x": 1}"#)
        #expect(second.status == 0, "\(second)")
        #expect(second.stdout == first.stdout)
        #expect(second.stderr.contains("existing task \(first.stdout.trimmingCharacters(in: .newlines))"))
        let json = try await db.rota("enqueue", "report.build", "--unique", "report-2026-12", "--json").object()
        #expect(json["inserted"] as? Bool == false)
        #expect(try await db.rota("list", "--json").objects().count == 1)
    }

    @Test func jsonPrintsIDAndInserted() async throws {
        let db = try TempDatabase()
        let json = try await db.rota("enqueue", "a", "--json").object()
        #expect(json["id"] as? Int == 1)
        #expect(json["inserted"] as? Bool == true)
    }

    @Test func inAndAtSetWhenTheTaskIsDue() async throws {
        let db = try TempDatabase()
        let at = try await db.enqueue("a", "--at", "2030-01-02T03:04:05.5+01:00")
        #expect(try await db.task(at)["run_at"] as? String == "2030-01-02T02:04:05.500Z")
        let utc = try await db.enqueue("a", "--at", "2030-01-02T03:04Z")
        #expect(try await db.task(utc)["run_at"] as? String == "2030-01-02T03:04:00.000Z")
        let before = Date()
        let later = try await db.enqueue("a", "--in", "1h30m")
        let runAt = try #require(instant(try await db.task(later)["run_at"]))
        #expect(abs(runAt.timeIntervalSince(before) - 5400) < 30)
        let human = try await db.rota("list", "--limit", "1", environment: ["COLUMNS": "200"])
        #expect(human.stdout.contains("in 1h29m") || human.stdout.contains("in 1h30m"), "\(human)")
    }

    @Test(arguments: [
        (["--in", "90x"], "--in"),
        (["--in", "10"], "unit"),
        (["--in", "-5m"], "--in"),
        (["--at", "2030-01-02T03:04:05"], "zone"),
        (["--at", "tomorrow"], "--at"),
        (["--at", "2030-02-30T00:00:00Z"], "no such date"),
        (["--at", "2030-01-02T03:04:05Z", "--in", "5m"], "contradict"),
        (["--payload", "{not json"], "--payload"),
        (["--payload", ""], "--payload"),
        (["--priority=-1"], "--priority"),
        (["--priority", "-1"], "priority"),
        (["--priority", "high"], "priority"),
        (["--max-attempts", "0"], "--max-attempts"),
        (["--timeout", "0s"], "--timeout"),
        (["--unique", ""], "--unique"),
    ])
    func badInputExitsTwoWithTheReasonAndWritesNothing(arguments: [String], reason: String) async throws {
        let db = try TempDatabase()
        let result = try await db.rota(arguments: ["enqueue", "job"] + arguments)
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains(reason), "\(result)")
        #expect(result.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: db.path))
    }

    @Test func badInputAgainstAnExistingDatabaseWritesNothing() async throws {
        let db = try TempDatabase()
        _ = try await db.enqueue("first")
        let result = try await db.rota("enqueue", "job", "--payload", "[1,")
        #expect(result.status == 2)
        #expect(try await db.rota("list", "--json").objects().count == 1)
    }

    @Test func missingNameIsBadUsage() async throws {
        let db = try TempDatabase()
        let result = try await db.rota("enqueue")
        #expect(result.status == 2)
        #expect(result.stderr.contains("name"))
    }

    /// Negative numbers reach the option's own check (not "missing value"); a database in a missing
    /// directory is named as such, and nothing is created.
    @Test func negativeNumbersAndAMissingDirectoryGetClearErrors() async throws {
        let db = try TempDatabase()
        let negative = try await db.rota("enqueue", "job", "--priority", "-1")
        #expect(negative.status == 2)
        #expect(negative.stderr.contains("--priority: must be 0 or more"), "\(negative)")
        let limit = try await db.rota("list", "--limit", "-1")
        #expect(limit.status == 2)
        #expect(limit.stderr.contains("--limit: must be 0 (no limit) or more"), "\(limit)")
        let nowhere = db.directory.appendingPathComponent("missing/rota.db").path
        let result = try await Rota.run(["enqueue", "job", "--db", nowhere])
        #expect(result.status == 1)
        #expect(result.stderr.contains("\(db.directory.appendingPathComponent("missing").path) is not a directory Rota can reach"), "\(result)")
    }
}

/// Parses a `--json` instant (ISO-8601 UTC with milliseconds).
func instant(_ text: Any?) -> Date? {
    guard let text = text as? String else { return nil }
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.date(from: text)
}
