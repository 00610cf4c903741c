import Foundation
import Logging
import PostgresNIO
import RotaPostgresStore
import Synchronization
import Testing

/// The PostgreSQL server the CLI tests use: `ROTA_TEST_POSTGRES_URL` (`scripts/test` starts a throwaway one;
/// `scripts/postgres.sh start DIR` prints a URL). Without it the PostgreSQL cases are skipped, saying why.
enum PostgresCLIServer {
    /// The server's URL, or nil when none was given.
    static let url: String? = {
        let value = ProcessInfo.processInfo.environment["ROTA_TEST_POSTGRES_URL"] ?? ""
        return value.isEmpty ? nil : value
    }()

    /// Why the PostgreSQL cases are skipped.
    static let skipped: Comment = "PostgreSQL CLI cases skipped: ROTA_TEST_POSTGRES_URL is not set (scripts/test starts a throwaway server)"

    private static let counter = Atomic<Int>(0)

    /// A schema name no other test of this run (or of an earlier run on the same server) uses.
    static func freshSchemaName() -> String {
        "rota_cli_\(getpid())_\(Int(Date().timeIntervalSince1970))_\(counter.add(1, ordering: .relaxed).newValue)"
    }
}

/// One test's database on the PostgreSQL test server: a schema of its own (`&schema=rota_cli_…` added to the
/// server's URL, created by the first command that migrates), and a temporary directory for its files.
final class PostgresCLIDatabase: Sendable {
    let url: String
    let schema: String
    private let files: TempDatabase

    init() throws {
        let server = try #require(PostgresCLIServer.url)
        schema = PostgresCLIServer.freshSchemaName()
        url = server + (server.contains("?") ? "&" : "?") + "schema=" + schema
        files = try TempDatabase()
    }

    /// The test's scratch directory.
    var directory: URL { files.directory }

    /// `arguments` with `--db URL` added: at the end, or before a `--` (after which all is the command's).
    func withDatabase(_ arguments: [String]) -> [String] {
        guard let separator = arguments.firstIndex(of: "--") else { return arguments + ["--db", url] }
        return Array(arguments[..<separator]) + ["--db", url] + Array(arguments[separator...])
    }

    /// Runs `rota ARGS… --db URL`.
    @discardableResult
    func rota(_ arguments: String..., input: Data? = nil) async throws -> CLIResult {
        try await Rota.run(withDatabase(arguments), input: input)
    }

    /// Runs `rota ARGS… --db URL` and fails the test unless it exits 0.
    @discardableResult
    func ok(_ arguments: String...) async throws -> CLIResult {
        let result = try await Rota.run(withDatabase(arguments))
        guard result.status == 0 else { throw TestFailure("rota \(arguments.joined(separator: " ")) failed: \(result)") }
        return result
    }

    /// Enqueues a task with `rota enqueue ARGS…` and returns its id.
    func enqueue(_ arguments: String...) async throws -> Int {
        let result = try await Rota.run(withDatabase(["enqueue"] + arguments))
        guard result.status == 0, let id = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestFailure("enqueue failed: \(result)")
        }
        return id
    }

    /// The task `id` as `rota show --json` prints it.
    func task(_ id: Int) async throws -> [String: Any] {
        try await ok("show", String(id), "--json").object()
    }

    /// The outcomes of task `id`'s attempts, in order.
    func outcomes(_ id: Int) async throws -> [String] {
        (try await task(id)["attempts_log"] as? [[String: Any]] ?? []).map { $0["outcome"] as? String ?? "?" }
    }

    /// Runs SQL on the test's schema directly, bypassing Rota (to damage what `rota check` checks).
    func sql(_ statement: String) async throws {
        let configuration = try PostgresTaskStore.Configuration(url: url)
        var target: PostgresConnection.Configuration
        if let socketDirectory = configuration.socketDirectory {
            target = .init(unixSocketPath: socketDirectory + "/.s.PGSQL.\(configuration.port)", username: configuration.user,
                           password: configuration.password, database: configuration.database)
        } else {
            // A test server reached over TCP is a local one, without TLS.
            target = .init(host: configuration.host ?? "localhost", port: configuration.port, username: configuration.user,
                           password: configuration.password, database: configuration.database, tls: .disable)
        }
        target.options.additionalStartupParameters = [("search_path", "\"\(schema)\"")]
        let connection = try await PostgresConnection.connect(configuration: target, id: 1, logger: Logger(label: "rota.cli-tests"))
        do {
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: Logger(label: "rota.cli-tests"))
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}

/// Every command on a PostgreSQL database: the real `rota` binary against a real server, each test in a
/// schema of its own.
@Suite("rota on PostgreSQL", .serialized, .enabled(if: PostgresCLIServer.url != nil, PostgresCLIServer.skipped))
struct PostgresCommandTests {
    @Test func migrateCreatesTheSchemaAndCheckReportsIt() async throws {
        let db = try PostgresCLIDatabase()
        // Before migrate: queries say there is no Rota schema and how to make one; check says what is pending.
        let list = try await db.rota("list")
        #expect(list.status == 1, "\(list)")
        #expect(list.stderr.contains("has no Rota schema") && list.stderr.contains("rota migrate"), "\(list)")
        let before = try await db.rota("check", "--json")
        #expect(before.status == 1, "\(before)")
        let pending = try before.object()
        #expect(pending["ok"] as? Bool == false)
        #expect(pending["schema_version"] as? Int == 0)
        let known = try #require(pending["known_schema_version"] as? Int)
        #expect(known >= 1)
        #expect(pending["pending_migrations"] as? [Int] == Array(1...known))
        let beforeText = try await db.rota("check")
        #expect(beforeText.stdout.contains("schema     0, this binary knows \(known)"), "\(beforeText)")
        #expect(beforeText.stdout.contains("run rota migrate"), "\(beforeText)")

        let migrate = try await db.ok("migrate")
        #expect(migrate.stdout == "\(db.url): schema version \(known) (this binary knows \(known))\n", "\(migrate)")
        #expect(try await db.ok("migrate").stdout == migrate.stdout, "migrate again changes nothing")

        let check = try await db.ok("check", "--json").object()
        #expect(check["ok"] as? Bool == true)
        #expect(check["schema_version"] as? Int == known)
        #expect(check["known_schema_version"] as? Int == known)
        #expect((check["pending_migrations"] as? [Int])?.isEmpty == true)
        #expect((check["count_mismatches"] as? [Any])?.isEmpty == true)
        #expect((check["batch_count_mismatches"] as? [Any])?.isEmpty == true)
        #expect(check["path"] as? String == db.url)
        #expect((check["database"] as? String)?.contains("schema \(db.schema)") == true, "\(check)")
        // SQLite's file facts are not shown for PostgreSQL.
        #expect(check["integrity"] == nil && check["wal_size_bytes"] == nil && check["file_size_bytes"] == nil, "\(check)")
        let text = try await db.ok("check").stdout
        #expect(text.contains("schema     \(known) (current)\n"), "\(text)")
        #expect(text.contains("counts     ok\n"), "\(text)")
        #expect(!text.contains("WAL") && !text.contains("integrity"), "\(text)")
        #expect(try await db.ok("list", "--json").objects().isEmpty)
    }

    @Test func enqueueListShowAndStats() async throws {
        let db = try PostgresCLIDatabase()
        // enqueue creates the schema, as it creates a SQLite file.
        let first = try await db.enqueue("email.send", "--payload", #"{"to":"ops@example.com"}"#, "--queue", "mail", "--priority", "5")
        let json = try await db.ok("enqueue", "report.build", "--unique", "r-1", "--json").object()
        let unique = try #require(json["id"] as? Int)
        #expect(json["inserted"] as? Bool == true)
        let again = try await db.ok("enqueue", "report.build", "--unique", "r-1", "--json")
        #expect(try again.object()["id"] as? Int == unique)
        #expect(try again.object()["inserted"] as? Bool == false)
        #expect(again.stderr.contains("existing task \(unique) already has unique key 'r-1'"), "\(again)")
        let later = try await db.enqueue("--exec", "--in", "1h", "--", "echo", "hi")

        let all = try await db.ok("list", "--json").objects()
        #expect(all.map { $0["id"] as? Int } == [later, unique, first])
        #expect(try await db.ok("list", "--queue", "mail", "--json").objects().map { $0["id"] as? Int } == [first])
        #expect(try await db.ok("list", "--name", "exec", "--json").objects().map { $0["id"] as? Int } == [later])
        #expect(try await db.ok("list", "--state", "dead", "--json").objects().isEmpty)
        #expect(try await db.ok("list").stdout.contains("email.send"))

        let task = try await db.task(first)
        #expect(task["name"] as? String == "email.send")
        #expect(task["queue"] as? String == "mail")
        #expect(task["priority"] as? Int == 5)
        #expect(task["state"] as? String == "scheduled")
        #expect((task["attempts_log"] as? [Any])?.isEmpty == true)
        #expect(try await db.ok("show", String(later)).stdout.contains(#"{"argv":["echo","hi"]}"#))
        let missing = try await db.rota("show", "999999")
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no task 999999 in \(db.url)"), "\(missing)")

        let stats = try await db.ok("stats", "--json").object()
        #expect((stats["states"] as? [String: Int])?["scheduled"] == 3)
        #expect(stats["total"] as? Int == 3)
        #expect((stats["queues"] as? [String: [String: Int]])?["mail"]?["scheduled"] == 1)
        #expect((stats["unhandled_names"] as? [[String: Any]])?.count == 3, "no worker handles them: \(stats)")
        #expect(try await db.ok("stats").stdout.contains("warning: no live worker handles email.send (1 scheduled)"))
        #expect(try await db.ok("workers", "--json").objects().isEmpty)
        #expect(try await db.ok("workers").stdout == "No workers have run on this database.\n")
    }

    @Test func retryCancelAndPurge() async throws {
        let db = try PostgresCLIDatabase()
        let failing = try await db.enqueue("--exec", "--max-attempts", "1", "--", "false")
        #expect(try await db.ok("run", "--until-empty").status == 0)
        #expect(try await db.task(failing)["state"] as? String == "dead")
        // Enqueued after the run: `--until-empty` waits for scheduled tasks, due or not.
        let waiting = try await db.enqueue("--exec", "--in", "1h", "--", "true")

        // Cancel: a scheduled task at once; a finished one is refused (exit 1), an unknown one too.
        let cancel = try await db.ok("cancel", String(waiting), "--json").objects()
        #expect(cancel.first?["status"] as? String == "cancelled")
        let refused = try await db.rota("cancel", String(failing), "999999")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("task \(failing) not cancelled: it is already dead"), "\(refused)")
        #expect(refused.stderr.contains("task 999999 not cancelled: no such task"), "\(refused)")

        // Retry: by id, and every task of a state (due now, with one more attempt).
        #expect(try await db.ok("retry", String(failing)).stdout == "task \(failing) retried\n")
        #expect(try await db.task(failing)["state"] as? String == "scheduled")
        let notRetried = try await db.rota("retry", String(failing))
        #expect(notRetried.status == 1)
        #expect(notRetried.stderr.contains("it is scheduled"), "\(notRetried)")
        let all = try await db.ok("retry", "--state", "cancelled", "--json").object()
        #expect(all["retried"] as? Int == 1)
        #expect(all["state"] as? String == "cancelled")
        #expect(try await db.task(waiting)["state"] as? String == "scheduled")

        // Both run again: the failing one dies again, the other succeeds.
        #expect(try await db.ok("run", "--until-empty").status == 0)
        #expect(try await db.outcomes(failing) == ["failed", "failed"])
        #expect(try await db.outcomes(waiting) == ["succeeded"])

        // Purge: finished tasks only, with their attempts.
        let purged = try await db.ok("purge", "--older-than", "0s", "--state", "dead", "--json").object()
        #expect(purged["purged"] as? Int == 1)
        #expect(purged["states"] as? [String] == ["dead"])
        #expect(try await db.ok("list", "--json").objects().map { $0["id"] as? Int } == [waiting])
        #expect(try await db.rota("show", String(failing)).status == 1)
        #expect(try await db.ok("purge", "--older-than", "0s").stdout.hasPrefix("purged 1 task finished before "))
        #expect(try await db.ok("list", "--json").objects().isEmpty)
        #expect(try await db.ok("check").status == 0)
    }

    @Test func batchSubmitStatusAndRunUntilEmpty() async throws {
        let db = try PostgresCLIDatabase()
        let marks = db.directory.appendingPathComponent("ran.txt").path
        let items = db.directory.appendingPathComponent("items.jsonl")
        try Data("""
            {"argv": ["sh", "-c", "echo a >> \(marks)"]}
            {"argv": ["sh", "-c", "echo b >> \(marks)"], "key": "b"}

            {"argv": ["sh", "-c", "echo c >> \(marks)"], "queue": "default", "priority": 3}

            """.utf8).write(to: items)
        let onComplete = #"{"name": "exec", "payload": {"argv": ["sh", "-c", "echo done >> \#(marks)"]}}"#
        let submit = try await db.ok("batch", "submit", "--name", "b1", "--on-complete", onComplete, items.path)
        #expect(submit.stdout == "batch b1: 3 items, 3 added, 0 already present; 0/3 finished\n", "\(submit)")
        // Submitting again (a resumed submission) adds nothing.
        let resubmit = try await db.ok("batch", "submit", "--name", "b1", items.path)
        #expect(resubmit.stdout == "batch b1: 3 items, 0 added, 3 already present; 0/3 finished\n", "\(resubmit)")
        // From standard input too.
        let piped = try await db.rota("batch", "submit", "--name", "b2", "-", input: Data(#"{"argv": ["true"]}"#.utf8))
        #expect(piped.stdout == "batch b2: 1 item, 1 added, 0 already present; 0/1 finished\n", "\(piped)")

        let status = try await db.ok("batch", "status", "b1", "--json").object()
        #expect(status["total"] as? Int == 3)
        #expect(status["sealed"] as? Bool == true)
        #expect((status["states"] as? [String: Int])?["scheduled"] == 3)
        #expect((status["unhandled"] as? [[String: Any]])?.first?["reason"] as? String == "no_worker_handles_name")
        #expect(try await db.ok("batch", "status", "b1").stdout.hasPrefix("batch b1 (running, queue default)"))
        #expect(try await db.ok("batch", "list", "--json").json() as? [[String: Any]] != nil)
        let direct = try await db.enqueue("--exec", "--", "sh", "-c", "echo direct >> \(marks)")

        let run = try await db.rota("run", "--until-empty", "--concurrency", "2")
        #expect(run.status == 0, "\(run)")
        let ran = try String(contentsOfFile: marks, encoding: .utf8).split(separator: "\n").sorted()
        #expect(ran == ["a", "b", "c", "direct", "done"], "every item, the direct task and the on_complete task, once each")
        #expect(try await db.outcomes(direct) == ["succeeded"])
        let done = try await db.ok("batch", "status", "b1", "--json").object()
        #expect(done["finished"] as? Int == 3)
        #expect(!(done["completed_at"] is NSNull), "\(done)")
        #expect(try await db.ok("batch", "status", "b1").stdout.hasPrefix("batch b1 (complete"))
        #expect(try await db.ok("list", "--batch", "b1", "--state", "succeeded", "--json").objects().count == 3)
        #expect(try await db.ok("batch", "retry", "b1").stdout == "batch b1: 0 dead items scheduled again\n")
        let cancelled = try await db.ok("batch", "cancel", "b1", "--json").object()
        #expect(cancelled["cancelled"] as? Int == 0 && cancelled["requested"] as? Int == 0)
        let workers = try await db.ok("workers", "--json").objects()
        #expect(workers.count == 1 && workers.first?["status"] as? String == "stopped", "\(workers)")
        #expect(try await db.ok("check").status == 0)
    }

    @Test func runWithSchedulesFiresThemAndSchedulesListsThem() async throws {
        let db = try PostgresCLIDatabase()
        let schedules = db.directory.appendingPathComponent("schedules").path
        try FileManager.default.createDirectory(atPath: schedules, withIntermediateDirectories: true)
        try "* * * * * *  tick  exec true\n".write(toFile: schedules + "/tick.cron", atomically: true, encoding: .utf8)
        // No schema yet: the files' schedules, with a note.
        let files = try await db.rota("schedules", "--schedules", schedules, "--json")
        #expect(files.status == 0, "\(files)")
        #expect(files.stderr.contains("no database at \(db.url)"), "\(files)")
        #expect(try files.objects().first?["stored"] as? Bool == false)

        let run = try Rota.start(db.withDatabase(["run", "--schedules", schedules, "--log-level", "warning"]))
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }
        _ = try await waitFor(timeout: .seconds(120)) { () -> Bool? in
            if !run.process.isRunning { throw TestFailure("rota run exited: \(try await run.finish())") }
            let fired = try await db.rota("list", "--schedule", "tick", "--state", "succeeded", "--json")
            guard fired.status == 0 else { return nil }
            return try fired.objects().isEmpty ? nil : true
        }
        let stored = try await db.ok("schedules", "--json").objects()
        #expect(stored.count == 1)
        #expect(stored.first?["name"] as? String == "tick")
        #expect(stored.first?["active"] as? Bool == true)
        #expect(!(stored.first?["last_fire_at"] is NSNull), "\(stored)")
        #expect(try await db.ok("schedules").stdout.contains("tick"))
        let withFiles = try await db.ok("schedules", "--schedules", schedules, "--json")
        #expect(try withFiles.objects().first?["stored"] as? Bool == true)
        #expect(withFiles.stderr.isEmpty, "\(withFiles)")
        #expect(try await db.ok("workers", "--json").objects().first?["status"] as? String == "live")
        // The only scheduler leads the cluster (it takes the lead at its first maintenance tick).
        let leader = try await waitFor(timeout: .seconds(120)) { () -> String? in
            let first = try await db.ok("workers", "--json").objects().first
            return first?["leader"] as? Bool == true ? first?["id"] as? String : nil
        }
        let table = try await db.ok("workers").stdout
        #expect(table.contains("live leader") && table.contains("Leader: \(leader), its lease ends in "), "\(table)")

        kill(run.process.processIdentifier, SIGTERM)
        let finished = try await run.finish()
        #expect(finished.status == 0, "\(finished)")
        let stopped = try await db.ok("workers", "--json").objects()
        #expect(stopped.allSatisfy { $0["status"] as? String == "stopped" })
        // It resigned as it stopped.
        #expect(stopped.allSatisfy { $0["leader"] as? Bool == false }, "\(stopped)")
        #expect(try await db.ok("workers").stdout.contains("Leader: none"))
    }

    @Test func checkFindsWrongCountsAndRecountRebuildsThem() async throws {
        let db = try PostgresCLIDatabase()
        for _ in 0..<3 { _ = try await db.enqueue("report.build", "--queue", "q1") }
        let items = db.directory.appendingPathComponent("items.jsonl")
        try Data("{\"argv\": [\"true\"]}\n{\"argv\": [\"true\"]}\n".utf8).write(to: items)
        try await db.ok("batch", "submit", "--name", "b1", items.path)
        #expect(try await db.ok("check").status == 0)

        // Damage the counts behind `rota stats` and a batch's total, as a hand edit would.
        try await db.sql("UPDATE rota_task_counts SET n = n + 5 WHERE queue = 'q1' AND state = 'scheduled'")
        try await db.sql("UPDATE rota_batches SET total = total + 2 WHERE name = 'b1'")
        let broken = try await db.rota("check", "--json")
        #expect(broken.status == 1, "\(broken)")
        let report = try broken.object()
        #expect(report["ok"] as? Bool == false)
        let counts = try #require(report["count_mismatches"] as? [[String: Any]])
        #expect(counts.count == 1)
        #expect(counts.first?["queue"] as? String == "q1" && counts.first?["name"] as? String == "report.build")
        #expect(counts.first?["state"] as? String == "scheduled")
        #expect(counts.first?["counted"] as? Int == 8 && counts.first?["actual"] as? Int == 3)
        let batches = try #require(report["batch_count_mismatches"] as? [[String: Any]])
        #expect(batches.count == 1)
        #expect(batches.first?["batch"] as? String == "b1" && batches.first?["field"] as? String == "total")
        #expect(batches.first?["counted"] as? Int == 4 && batches.first?["actual"] as? Int == 2)
        let text = try await db.rota("check")
        #expect(text.status == 1)
        #expect(text.stdout.contains("2 wrong (rota check --recount rebuilds them)"), "\(text)")
        #expect(text.stdout.contains("q1 report.build scheduled: counted 8, actual 3"), "\(text)")
        #expect(text.stdout.contains("batch b1 total: counted 4, actual 2"), "\(text)")

        let recount = try await db.rota("check", "--recount")
        #expect(recount.status == 0, "\(recount)")
        #expect(recount.stderr.contains("task counts rebuilt (2 were wrong)"), "\(recount)")
        #expect(recount.stdout.contains("counts     ok"), "\(recount)")
        #expect((try await db.ok("stats", "--json").object()["states"] as? [String: Int])?["scheduled"] == 5)
        #expect(try await db.ok("batch", "status", "b1", "--json").object()["total"] as? Int == 2)
    }

    /// A `rota run` killed (SIGKILL) while its tasks run loses none of them and runs none twice: the next
    /// start recovers the dead worker's tasks (each gets a `lost` attempt) and runs them again; every task
    /// ends succeeded with exactly one succeeded attempt.
    @Test func aSchedulerKilledMidRunLosesNoTaskAndRunsNoneTwice() async throws {
        let db = try PostgresCLIDatabase()
        try await db.ok("migrate")
        let gate = db.directory.appendingPathComponent("gate").path
        let log = db.directory.appendingPathComponent("ran.txt").path
        // Quick tasks run first (higher priority) and finish in the first run; slow ones wait for the gate, so
        // the first run is killed while they are running, however slow the machine.
        var quick: [Int] = []
        for index in 0..<3 {
            quick.append(try await db.enqueue("--exec", "--priority", "5", "--", "sh", "-c", "echo quick\(index) >> \(log)"))
        }
        var slow: [Int] = []
        for index in 0..<4 {
            slow.append(try await db.enqueue("--exec", "--", "sh", "-c",
                                             "while [ ! -e \(gate) ]; do sleep 0.05; done; echo slow\(index) >> \(log)"))
        }
        let first = try Rota.start(db.withDatabase(["run", "--concurrency", "2", "--log-level", "warning"]))
        defer { if first.process.isRunning { kill(first.process.processIdentifier, SIGKILL) } }
        let running = try await waitFor(timeout: .seconds(120)) { () -> [Int]? in
            if !first.process.isRunning { throw TestFailure("rota run exited: \(try await first.finish())") }
            let tasks = try await db.ok("list", "--all", "--json").objects()
            let state = Dictionary(uniqueKeysWithValues: tasks.map { ($0["id"] as? Int ?? 0, $0["state"] as? String ?? "?") })
            let runningSlow = slow.filter { state[$0] == "running" }
            return quick.allSatisfy({ state[$0] == "succeeded" }) && runningSlow.count == 2 ? runningSlow : nil
        }
        kill(first.process.processIdentifier, SIGKILL)
        let killed = try await first.finish()
        #expect(killed.status != 0, "\(killed)")
        for id in running { #expect(try await db.task(id)["state"] as? String == "running", "the dead worker still holds it") }

        // The next start runs everything to the end.
        #expect(FileManager.default.createFile(atPath: gate, contents: nil))
        let second = try await Rota.run(db.withDatabase(["run", "--until-empty", "--concurrency", "2", "--log-level", "warning"]))
        #expect(second.status == 0, "\(second)")
        for id in quick + slow {
            let outcomes = try await db.outcomes(id)
            #expect(try await db.task(id)["state"] as? String == "succeeded", "task \(id): \(outcomes)")
            #expect(outcomes.filter { $0 == "succeeded" }.count == 1, "task \(id): \(outcomes)")
            #expect(outcomes.allSatisfy { $0 == "succeeded" || $0 == "lost" }, "task \(id): \(outcomes)")
        }
        for id in running { #expect(try await db.outcomes(id) == ["lost", "succeeded"], "task \(id)") }
        for id in quick { #expect(try await db.outcomes(id) == ["succeeded"], "task \(id)") }
        // A command of the killed run may still finish once the gate opens (nothing records it: its scheduler
        // is gone), so the log is compared as a set; the attempts above are what counts.
        let ran = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(ran.filter { $0.hasPrefix("quick") }.count == 3, "\(ran)")
        #expect(Set(ran.filter { $0.hasPrefix("slow") }) == Set((0..<4).map { "slow\($0)" }), "\(ran)")
        #expect(try await db.ok("check").status == 0)
        #expect(try await db.ok("stats", "--json").object()["total"] as? Int == 7)
    }
}

/// What needs no server: a bad URL, an unreachable server, the SQLite-only commands and options.
@Suite("rota --db with a PostgreSQL URL: bad input")
struct PostgresURLInputTests {
    @Test(arguments: [
        ("postgres://rota@/rota?host=/tmp&bogus=1", "unknown option bogus"),
        ("postgres://rota@localhost", "names no database"),
        ("postgresql://rota@localhost/rota?port=99999", "port 99999"),
        ("postgres://rota:s3cret@localhost/rota?sslmode=sometimes", "sslmode sometimes"),
    ])
    func aMalformedURLIsBadUsageNamingWhatIsWrong(url: String, reason: String) async throws {
        for command in [["list"], ["enqueue", "x"], ["migrate"], ["check"], ["run", "--until-empty"]] {
            let result = try await Rota.run(command + ["--db", url])
            #expect(result.status == 2, "\(command): \(result)")
            #expect(result.stderr.contains("--db: ") && result.stderr.contains(reason), "\(command): \(result)")
            #expect(!result.stderr.contains("s3cret"), "\(command): \(result)")
        }
        let fromEnvironment = try await Rota.run(["stats"], environment: ["ROTA_DB": url])
        #expect(fromEnvironment.status == 2, "\(fromEnvironment)")
        #expect(fromEnvironment.stderr.contains(reason), "\(fromEnvironment)")
    }

    @Test func anUnreachableServerIsARuntimeFailureNamingThePlaceWithoutThePassword() async throws {
        // Nothing listens on port 1; the socket directory does not exist.
        for url in ["postgres://rota:s3cret@127.0.0.1:1/rota", "postgresql://rota:s3cret@/rota?host=/nonexistent/rota-test"] {
            for command in [["list"], ["enqueue", "x"], ["migrate"], ["check"], ["schedules"]] {
                let result = try await Rota.run(command + ["--db", url], timeout: .seconds(120))
                #expect(result.status == 1, "\(command): \(result)")
                #expect(result.stderr.contains("cannot reach the PostgreSQL database rota at "), "\(command): \(result)")
                #expect(result.stderr.contains(url.contains("127.0.0.1") ? "127.0.0.1:1" : "/nonexistent/rota-test"), "\(command): \(result)")
                #expect(!result.stderr.contains("s3cret") && !result.stdout.contains("s3cret"), "\(command): \(result)")
            }
        }
    }

    @Test func sqliteOnlyCommandsAndOptionsRefuseAURL() async throws {
        let url = "postgres://rota:s3cret@127.0.0.1:1/rota"
        let durability = try await Rota.run(["run", "--durability", "normal", "--db", url])
        #expect(durability.status == 2, "\(durability)")
        #expect(durability.stderr.contains("--durability normal is SQLite's setting"), "\(durability)")
        for command in [["_dev", "populate", "--count", "1"], ["_dev", "worker", "--id", "w"], ["_dev", "churn"], ["_dev", "crashy"]] {
            let result = try await Rota.run(command + ["--db", url])
            #expect(result.status == 2, "\(command): \(result)")
            #expect(result.stderr.contains("works on a SQLite database file only"), "\(command): \(result)")
            #expect(!result.stderr.contains("s3cret"), "\(command): \(result)")
        }
    }
}
