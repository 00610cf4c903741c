import Foundation
import Testing
import RotaSQLiteStore
import Rota

/// `rota schedules` (stored schedules, or a directory's) and `rota schedules check DIR`.
@Suite final class SchedulesCommandTests {
    private let directory: String
    private let schedules: String
    private let database: String

    init() throws {
        directory = NSTemporaryDirectory() + "rota-schedules-cli-\(UUID().uuidString)"
        schedules = directory + "/schedules"
        database = directory + "/rota.db"
        try FileManager.default.createDirectory(atPath: schedules, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    private func write(_ name: String, _ text: String) throws {
        try text.write(toFile: schedules + "/" + name, atomically: true, encoding: .utf8)
    }

    private var repositorySchedules: String { cronCLIPackageRoot.appendingPathComponent("schedules").path }

    private func objects(_ run: CronCLIRun) throws -> [[String: Any]] {
        let value = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8))
        return try #require(value as? [[String: Any]], "\(run)")
    }

    // MARK: check

    @Test func checkPassesOnTheRepositorysSchedules() throws {
        let expected = ScheduleLoading.load(directory: repositorySchedules)
        let run = try CronCLIRun(["schedules", "check", repositorySchedules])
        #expect(run.status == 0, "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
        #expect(run.lines == ["\(repositorySchedules): \(expected.specs.count) schedules in 3 files, no errors"])
    }

    @Test func checkReportsEveryErrorOfEveryFileAndExitsTwo() throws {
        try write("a.cron", """
            # fine, then three mistakes
            0 3 * * *    good          exec true
            61 * * * *   bad-minute    exec true
            0 3 * * *    bad-option    retries=0  exec true
            0 3 * * *    no-action
            """)
        try write("b.cron", """
            TZ=Mars/Olympus
            @hourly      good          exec true
            0 0 30 2 *   february-30   exec true
            """)
        try write("c.cron~", "this backup is ignored\n")
        let run = try CronCLIRun(["schedules", "check", schedules])
        #expect(run.status == 2, "\(run)")
        #expect(run.stdout.isEmpty, "\(run)")
        let a = schedules + "/a.cron"
        let b = schedules + "/b.cron"
        let located = run.errorLines.dropLast().map { line in line.split(separator: ":").prefix(3).joined(separator: ":") }
        #expect(located == ["\(a):3:1", "\(a):4:36", "\(a):5:1", "\(b):1:4", "\(b):2:14", "\(b):3:5"], "\(run)")
        #expect(run.errorLines[0].hasPrefix("\(a):3:1: minute field: \"61\""), "\(run)")
        #expect(run.errorLines[3].contains("unknown time zone \"Mars/Olympus\""), "\(run)")
        #expect(run.errorLines[4].contains("duplicate schedule name \"good\""), "\(run)")
        #expect(run.errorLines.last == "rota: 6 errors in 2 files; no schedule was loaded", "\(run)")
        #expect(!FileManager.default.fileExists(atPath: database))
    }

    @Test func checkOnAMissingDirectoryExitsTwo() throws {
        let run = try CronCLIRun(["schedules", "check", directory + "/missing"])
        #expect(run.status == 2)
        #expect(run.stdout.isEmpty)
        #expect(run.errorLines.first == "\(directory)/missing: no such directory; expected a directory of schedule files", "\(run)")
    }

    @Test func checkCountsSchedulesAndFiles() throws {
        try write("one", "@daily  only  exec true\n")
        let run = try CronCLIRun(["schedules", "check", schedules])
        #expect(run.lines == ["\(schedules): 1 schedule in 1 file, no errors"], "\(run)")
    }

    // MARK: list from the database

    /// Loads `a.cron` into the database at `t0` and fires at `t0 + 61s`; then removes one schedule.
    private func seed() async throws -> (t0: Date, store: SQLiteTaskStore) {
        try write("a.cron", """
            * * * * *   every-minute   missed=once  exec echo "hello world"
            0 9 * * *   morning        tz=Europe/London queue=mail retries=5 timeout=90s  task mail.digest {"to": "all"}
            @daily      going          exec true
            """)
        let store = try SQLiteTaskStore(path: database, configuration: .init(durability: .normal))
        let t0 = Date(timeIntervalSince1970: 1_800_000_000) // 2027-01-15T08:00:00Z, a whole minute
        guard case .synced = try await store.loadSchedules(directory: schedules, now: t0) else {
            throw CronCLITestFailure("the seed schedules did not load")
        }
        _ = try await store.fireDueSchedules(now: t0.addingTimeInterval(61), grace: 5)
        try write("a.cron", """
            * * * * *   every-minute   missed=once  exec echo "hello world"
            0 9 * * *   morning        tz=Europe/London queue=mail retries=5 timeout=90s  task mail.digest {"to": "all"}
            """)
        guard case .synced = try await store.loadSchedules(directory: schedules, now: t0.addingTimeInterval(62)) else {
            throw CronCLITestFailure("the edited schedules did not load")
        }
        return (t0, store)
    }

    @Test func jsonListsTheStoredSchedulesWithTheirState() async throws {
        _ = try await seed()
        let run = try CronCLIRun(["schedules", "--db", database, "--json"])
        #expect(run.status == 0, "\(run)")
        let rows = try objects(run)
        #expect(rows.map { $0["name"] as? String } == ["every-minute", "morning", "going"])
        let minute = rows[0]
        #expect(minute["expression"] as? String == "* * * * *")
        #expect(minute["explanation"] as? String == "every minute, UTC")
        #expect(minute["timezone"] as? String == "UTC")
        #expect(minute["task"] as? String == "exec")
        #expect((minute["payload"] as? [String: [String]]) == ["argv": ["echo", "hello world"]])
        #expect(minute["queue"] as? String == "default")
        #expect(minute["max_attempts"] as? Int == 3)
        #expect(minute["timeout_seconds"] is NSNull)
        #expect(minute["missed"] as? String == "once")
        #expect(minute["overlap"] as? String == "allow")
        #expect(minute["source"] as? String == schedules + "/a.cron:1")
        #expect(minute["active"] as? Bool == true)
        #expect(minute["last_fire_at"] as? String == "2027-01-15T08:01:00Z")
        #expect(minute["next_fire_at"] as? String == "2027-01-15T08:02:00Z")
        let morning = rows[1]
        #expect(morning["timezone"] as? String == "Europe/London")
        #expect(morning["explanation"] as? String == "at 09:00 every day, Europe/London")
        #expect(morning["task"] as? String == "mail.digest")
        #expect((morning["payload"] as? [String: String]) == ["to": "all"])
        #expect(morning["queue"] as? String == "mail")
        #expect(morning["max_attempts"] as? Int == 5)
        #expect(morning["timeout_seconds"] as? Int == 90)
        #expect(morning["last_fire_at"] is NSNull)
        #expect(morning["next_fire_at"] as? String == "2027-01-15T09:00:00Z")
        // Removed from the files: inactive, no next fire, still listed.
        let going = rows[2]
        #expect(going["active"] as? Bool == false)
        #expect(going["next_fire_at"] is NSNull)
        #expect(Set(minute.keys) == [
            "name", "expression", "explanation", "timezone", "task", "payload", "queue", "priority", "max_attempts", "timeout_seconds",
            "missed", "overlap", "source", "active", "stored", "next_fire_at", "last_fire_at",
            "jitter_seconds", "next_delay_ms", "next_run_at",
        ])
        #expect(minute["jitter_seconds"] is NSNull)
        #expect(minute["next_delay_ms"] as? Int == 0)
        #expect(minute["next_run_at"] as? String == "2027-01-15T08:02:00.000Z")
        #expect(going["next_delay_ms"] is NSNull && going["next_run_at"] is NSNull)
    }

    @Test func theTableShowsZoneNextAndLastFire() async throws {
        _ = try await seed()
        let run = try CronCLIRun(["schedules", "--db", database])
        #expect(run.status == 0, "\(run)")
        #expect(run.lines.count == 4, "\(run)")
        #expect(run.lines[0].hasPrefix("NAME"))
        #expect(run.lines[0].contains("ZONE") && run.lines[0].contains("NEXT FIRE") && run.lines[0].contains("LAST FIRE"))
        #expect(run.lines[1].hasPrefix("every-minute"))
        #expect(run.lines[1].contains("2027-01-15T08:02:00Z  2027-01-15T08:01:00Z"))
        #expect(run.lines[1].hasSuffix(#"exec echo 'hello world'"#), "\(run)")
        #expect(run.lines[2].contains("Europe/London"))
        #expect(run.lines[0].contains("EXPRESSION  EXPLANATION"), "\(run)")
        #expect(run.lines[1].contains("* * * * *   every minute  "), "\(run)")
        #expect(run.lines[2].contains("at 09:00 every day  "), "\(run)")
        #expect(run.lines[3].hasPrefix("going") && run.lines[3].contains(" no "))
    }

    /// `jitter=`: the table shows the next fire with its delay, JSON the jitter, the delay and the run instant.
    /// The delay of fleet-report's fire at 2027-01-15T09:00:00Z under a 5m jitter is 219947 ms (computed in
    /// Python from the FNV-1a/fmix64 definition, as FireJitterTests pins others).
    @Test func aJitteredScheduleShowsItsNextFireWithItsDelay() async throws {
        try write("a.cron", """
            0 9 * * *   fleet-report   jitter=5m  exec true
            0 9 * * *   on-time                   exec true
            """)
        let store = try SQLiteTaskStore(path: database, configuration: .init(durability: .normal))
        let t0 = Date(timeIntervalSince1970: 1_800_000_000) // 2027-01-15T08:00:00Z
        guard case .synced = try await store.loadSchedules(directory: schedules, now: t0) else {
            throw CronCLITestFailure("the jittered schedules did not load")
        }
        let run = try CronCLIRun(["schedules", "--db", database])
        #expect(run.status == 0, "\(run)")
        let line = try #require(run.lines.first { $0.hasPrefix("fleet-report") }, "\(run)")
        #expect(line.contains("2027-01-15T09:00:00Z +3m39.947s  -  "), "\(run)")
        let plain = try #require(run.lines.first { $0.hasPrefix("on-time") }, "\(run)")
        #expect(plain.contains("2027-01-15T09:00:00Z  "), "\(run)")
        #expect(!plain.contains("+"), "\(run)")

        let json = try objects(try CronCLIRun(["schedules", "--db", database, "--json"]))
        let fleet = try #require(json.first { $0["name"] as? String == "fleet-report" })
        #expect(fleet["jitter_seconds"] as? Int == 300)
        #expect(fleet["next_fire_at"] as? String == "2027-01-15T09:00:00Z")
        #expect(fleet["next_delay_ms"] as? Int == 219_947)
        #expect(fleet["next_run_at"] as? String == "2027-01-15T09:03:39.947Z")
        // The task it fires runs then: fire_at stays the cron instant.
        let fired = try await store.fireDueSchedules(now: Date(timeIntervalSince1970: 1_800_003_601), grace: 5)
        #expect(fired.filter(\.inserted).count == 2)
        let task = try #require(try await store.list(TaskFilter(schedule: "fleet-report", limit: 10)).first)
        #expect(task.fireAt == Date(timeIntervalSince1970: 1_800_003_600))
        #expect(task.runAt == Date(unixMillis: 1_800_003_819_947))

        // From the files, before any database: the same delay (it is derived, not stored).
        let files = try objects(try CronCLIRun(["schedules", "--schedules", schedules, "--db", directory + "/none.db", "--json"]))
        let fromFiles = try #require(files.first { $0["name"] as? String == "fleet-report" })
        #expect(fromFiles["jitter_seconds"] as? Int == 300)
        if let next = (fromFiles["next_fire_at"] as? String).flatMap(cronCLIParseUTC) {
            #expect(fromFiles["next_delay_ms"] as? Int == Int(FireJitter.delayMillis(
                schedule: "fleet-report", fireAt: next.unixMillis, jitterMillis: 300_000)))
        }
    }

    @Test func listingAMissingDatabaseFailsAndDoesNotCreateIt() throws {
        let run = try CronCLIRun(["schedules", "--db", database])
        #expect(run.status != 0, "\(run)")
        #expect(run.stdout.isEmpty)
        #expect(!run.stderr.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: database))
    }

    // MARK: list from files

    @Test func withSchedulesAndNoDatabaseTheFilesAreShownWithComputedNextFires() throws {
        try write("a.cron", "0 9 * * *  morning  tz=America/New_York  exec echo hi\n@yearly  new-year  exec true\n")
        let run = try CronCLIRun(["schedules", "--schedules", schedules, "--db", database, "--json"])
        #expect(run.status == 0, "\(run)")
        #expect(run.stderr.contains("no database"), "\(run)")
        let rows = try objects(run)
        #expect(rows.map { $0["name"] as? String } == ["morning", "new-year"])
        #expect(rows.allSatisfy { $0["active"] as? Bool == false && $0["stored"] as? Bool == false && $0["last_fire_at"] is NSNull })
        let next = try #require((rows[1]["next_fire_at"] as? String).flatMap(cronCLIParseUTC))
        #expect(next > Date() && next <= Date().addingTimeInterval(366 * 86_400))
        #expect((rows[1]["next_fire_at"] as? String)?.hasSuffix("-01-01T00:00:00Z") == true)
        #expect(!FileManager.default.fileExists(atPath: database))
    }

    @Test func withSchedulesAndADatabaseTheStoredStateIsShown() async throws {
        _ = try await seed()
        // The files now also define a schedule the database does not have yet.
        try write("b.cron", "@hourly  brand-new  exec true\n")
        let run = try CronCLIRun(["schedules", "--schedules", schedules, "--db", database, "--json"])
        #expect(run.status == 0, "\(run)")
        let rows = try objects(run)
        #expect(rows.map { $0["name"] as? String } == ["every-minute", "morning", "brand-new"])
        #expect(rows[0]["active"] as? Bool == true)
        #expect(rows[0]["last_fire_at"] as? String == "2027-01-15T08:01:00Z")
        #expect(rows[0]["next_fire_at"] as? String == "2027-01-15T08:02:00Z")
        #expect(rows[2]["active"] as? Bool == false)
        #expect(rows[0]["stored"] as? Bool == true && rows[2]["stored"] as? Bool == false)
        #expect(rows[2]["last_fire_at"] is NSNull)
        // In the table, a schedule the database lacks is `new` (not `no`, which a removed one shows).
        let table = try CronCLIRun(["schedules", "--schedules", schedules, "--db", database])
        let line = try #require(table.stdout.split(separator: "\n").first { $0.hasPrefix("brand-new") })
        #expect(line.contains(" new "), "\(table.stdout)")
        #expect((rows[2]["next_fire_at"] as? String)?.hasSuffix(":00:00Z") == true)
    }

    @Test func withInvalidSchedulesNothingIsListedAndItExitsTwo() throws {
        try write("a.cron", "@hourly  ok  exec true\n@often  bad  exec true\n")
        let run = try CronCLIRun(["schedules", "--schedules", schedules, "--db", database, "--json"])
        #expect(run.status == 2, "\(run)")
        #expect(run.stdout.isEmpty)
        #expect(run.errorLines.first?.hasPrefix(schedules + "/a.cron:2:1: ") == true, "\(run)")
    }
}

struct CronCLITestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
