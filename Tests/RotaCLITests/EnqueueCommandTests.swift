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
        // Due 1h30m after the command ran: between the instants before and after it (to the millisecond).
        let before = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 * 1000).rounded(.down) / 1000)
        let later = try await db.enqueue("a", "--in", "1h30m")
        let after = Date()
        let runAt = try #require(instant(try await db.task(later)["run_at"]))
        #expect(runAt >= before.addingTimeInterval(5400) && runAt <= after.addingTimeInterval(5400), "\(runAt)")
        // Shown relative to when `list` runs: at most 1h30m away, whatever the time since.
        let human = try await db.rota("list", "--limit", "1", environment: ["COLUMNS": "200"])
        #expect(human.stdout.contains(#/\sin 1h([0-2]?[0-9]|30)m\s/#), "\(human)")
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

    /// A payload over the kernel's 128 KiB limit on one argument: `@FILE` and `-` (stdin) store it intact.
    @Test(arguments: ["file", "stdin"])
    func aPayloadLargerThanAnArgumentComesFromAFileOrStdin(source: String) async throws {
        let db = try TempDatabase()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        let blob = String((0..<300 * 1024).map { alphabet[$0 % alphabet.count] })
        let json = #"{"blob": ""# + blob + #"", "n": [1, 2]}"# + "\n"
        let result: CLIResult
        if source == "file" {
            let file = db.directory.appendingPathComponent("payload.json")
            try Data(json.utf8).write(to: file)
            result = try await db.rota("enqueue", "big", "--payload", "@" + file.path)
        } else {
            result = try await db.rota(arguments: ["enqueue", "big", "--payload", "-"], input: Data(json.utf8))
        }
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "1\n")
        let payload = try #require(try await db.task(1)["payload"] as? [String: Any])
        #expect((payload["blob"] as? String)?.utf8.count == 300 * 1024)
        #expect(payload["blob"] as? String == blob)
        #expect(payload["n"] as? [Int] == [1, 2])
    }

    /// A file that is missing, a directory or unreadable is named with the reason; bad JSON in it names
    /// the file; nothing is written (not even the database file).
    @Test func anUnreadableOrInvalidPayloadFileIsNamedAndNothingIsWritten() async throws {
        let db = try TempDatabase()
        let missing = db.directory.appendingPathComponent("nope.json").path
        let notJSON = db.directory.appendingPathComponent("bad.json")
        try Data("{not json".utf8).write(to: notJSON)
        let cases: [([String], [String])] = [
            (["--payload", "@" + missing], ["--payload @\(missing): cannot read \(missing): no such file"]),
            (["--payload", "@" + db.directory.path], ["cannot read \(db.directory.path): it is a directory"]),
            (["--payload", "@"], ["--payload @: name the file"]),
            (["--payload", "@" + notJSON.path], ["--payload @\(notJSON.path): not valid JSON"]),
        ]
        for (arguments, messages) in cases {
            let result = try await db.rota(arguments: ["enqueue", "job"] + arguments)
            #expect(result.status == 2, "\(result)")
            for message in messages { #expect(result.stderr.contains(message), "\(result)") }
            #expect(result.stdout.isEmpty)
            #expect(!FileManager.default.fileExists(atPath: db.path))
        }
        let empty = try await db.rota(arguments: ["enqueue", "job", "--payload", "-"], input: Data())
        #expect(empty.status == 2, "\(empty)")
        #expect(empty.stderr.contains("--payload - (standard input): not valid JSON"), "\(empty)")
        let latin1 = try await db.rota(arguments: ["enqueue", "job", "--payload", "-"], input: Data([0x22, 0xE9, 0x22]))
        #expect(latin1.status == 2, "\(latin1)")
        #expect(latin1.stderr.contains("not UTF-8"), "\(latin1)")
        #expect(!FileManager.default.fileExists(atPath: db.path))
        // With --exec, --payload in any form contradicts the command.
        let exec = try await db.rota(arguments: ["enqueue", "--exec", "--payload", "-", "--", "true"], input: Data("{}".utf8))
        #expect(exec.status == 2)
        #expect(exec.stderr.contains("contradict"), "\(exec)")
    }

    /// Permission denied is reported as such (skipped as root, who reads any file).
    @Test(.enabled(if: geteuid() != 0, "root reads through permission bits")) func anUnreadablePayloadFileSaysPermissionDenied() async throws {
        let db = try TempDatabase()
        let file = db.directory.appendingPathComponent("secret.json")
        try Data("{}".utf8).write(to: file)
        try FileManager.default.setAttributes([.posixPermissions: 0o000], ofItemAtPath: file.path)
        let result = try await db.rota("enqueue", "job", "--payload", "@" + file.path)
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("cannot read \(file.path): Permission denied"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: db.path))
    }

    /// Every line of `rota enqueue --help` fits in 80 columns, and it tells of @FILE and -.
    @Test func theHelpTellsOfFileAndStdinPayloadsWithin80Columns() async throws {
        let result = try await Rota.run(["enqueue", "--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("@FILE"))
        for line in result.lines { #expect(line.count <= 80, "\(line.count) columns: \(line)") }
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
