import Foundation
import Testing
@testable import RotaCron

@Suite struct ScheduleFilesTests {
    static let sample = """
        # A comment, then a blank line

        TZ=Europe/Berlin
        QUEUE=maintenance
        0 3 * * *         nightly-backup   retries=5 timeout=30m        exec /usr/local/bin/backup --full
        */15 * * * *      refresh-feeds    missed=once overlap=skip     task feeds.refresh {"limit": 100}
        @hourly           rotate-logs                                   exec logrotate "/etc/log rotate.conf" 'a b' c\\ d
        */10 * * * * *    seconds-job      tz=UTC queue=fast priority=-2 exec echo "say \\"hi\\"" ''
        MISSED=all:7
        OVERLAP=skip
        PRIORITY=3
        TIMEOUT=2h
        0 0 1 * *         monthly          task report.monthly
        TIMEOUT=
        QUEUE=
        0 0 * * MON       weekly           exec true
        """

    @Test func parsesSettingsOptionsAndActions() throws {
        let (schedules, errors) = ScheduleFiles.parse(Self.sample, file: "sample.cron")
        #expect(errors.isEmpty, "\(errors)")
        #expect(schedules.map(\.name) == ["nightly-backup", "refresh-feeds", "rotate-logs", "seconds-job", "monthly", "weekly"])

        let backup = schedules[0]
        #expect(backup == ScheduleDefinition(
            name: "nightly-backup", expression: "0 3 * * *", timeZone: "Europe/Berlin", queue: "maintenance",
            action: .exec(argv: ["/usr/local/bin/backup", "--full"]), maxAttempts: 5, timeoutSeconds: 1800,
            file: "sample.cron", line: 5))
        #expect(backup.timeout == .seconds(1800))

        let feeds = schedules[1]
        #expect(feeds.expression == "*/15 * * * *")
        #expect(feeds.action == .task(name: "feeds.refresh", payload: #"{"limit": 100}"#))
        #expect(feeds.missed == .once)
        #expect(feeds.overlap == .skip)
        #expect(feeds.maxAttempts == nil)

        #expect(schedules[2].expression == "@hourly")
        #expect(schedules[2].action == .exec(argv: ["logrotate", "/etc/log rotate.conf", "a b", "c d"]))

        let seconds = schedules[3]
        #expect(seconds.expression == "*/10 * * * * *")
        #expect(try seconds.cronExpression().hasSeconds)
        #expect(seconds.timeZone == "UTC")
        #expect(seconds.queue == "fast")
        #expect(seconds.priority == -2)
        #expect(seconds.action == .exec(argv: ["echo", "say \"hi\"", ""]))

        let monthly = schedules[4]
        #expect(monthly.action == .task(name: "report.monthly", payload: "{}"))
        #expect(monthly.missed == .all(cap: 7))
        #expect(monthly.overlap == .skip)
        #expect(monthly.priority == 3)
        #expect(monthly.timeoutSeconds == 7200)
        #expect(monthly.line == 13)

        let weekly = schedules[5]
        #expect(weekly.queue == "default")
        #expect(weekly.timeoutSeconds == nil)
        #expect(weekly.timeZone == "Europe/Berlin")
    }

    @Test func settingsWithSpacesAndQuotes() throws {
        let (schedules, errors) = ScheduleFiles.parse("TZ = America/New_York\nQUEUE= \"fast\"\nCRON_TZ='Asia/Tokyo'\n@daily a exec true\n", file: "f")
        #expect(errors.isEmpty, "\(errors)")
        #expect(schedules.first?.timeZone == "Asia/Tokyo")
        #expect(schedules.first?.queue == "fast")
        let lower = ScheduleFiles.parse("tz=UTC\n", file: "f").errors
        #expect(lower.first?.message.contains("capitals") == true)
    }

    @Test func crlfAndTabs() throws {
        let (schedules, errors) = ScheduleFiles.parse("TZ=UTC\r\n0\t1\t*\t*\t*\tjob\texec\techo\thi\r\n", file: "f")
        #expect(errors.isEmpty, "\(errors)")
        #expect(schedules.first?.action == .exec(argv: ["echo", "hi"]))
    }

    @Test func errorsNameFileLineAndColumn() throws {
        let text = """
            0 0 * * *   good-1     exec true
            0 25 * * *  bad-hour   exec true
            TZ=Mars/Olympus
            0 0 * * *   bad-opt    retires=3 exec true
            0 0 * * *   bad-json   task t {"a": }
            0 0 * * *   bad-quote  exec echo "unterminated
            0 0 * * *   no-action
            0 0 * * *   bad-action run true
            0 0 30 2 *  feb-30     exec true
            0 0 * * *   good-2     exec true
            0 0 * * *   bad-dur    timeout=5x exec true
            0 0 * * *   bad-tz     tz=Nowhere/Land exec true
            MAILTO=me@example.com
            0 0 * *     short
            0 0 * * *   good-1     exec false
            0 0 * * * * * name exec true
            0 0 * * *   bad-miss   missed=sometimes overlap=never exec true
            """
        let (schedules, errors) = ScheduleFiles.parse(text, file: "ops.cron")
        #expect(schedules.map(\.name) == ["good-1", "good-2"])
        let lines = errors.map(\.line)
        #expect(lines == [2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 17], "\(errors.map(\.description).joined(separator: "\n"))")
        let byLine = Dictionary(grouping: errors, by: \.line)

        let hour = try #require(byLine[2]?.first)
        #expect(hour.description.hasPrefix("ops.cron:2:3: hour field: \"25\" is out of range"), "\(hour)")
        let tz = try #require(byLine[3]?.first)
        #expect(tz.column == 4)
        #expect(tz.message.contains("unknown time zone \"Mars/Olympus\""))
        let option = try #require(byLine[4]?.first)
        #expect(option.column == 24)
        #expect(option.message.contains("unknown option \"retires\""))
        let json = try #require(byLine[5]?.first)
        #expect(json.column == 31)
        #expect(json.message.contains("not valid JSON"))
        let quote = try #require(byLine[6]?.first)
        #expect(quote.column == 34)
        #expect(quote.message.contains("unterminated double quote"))
        #expect(try #require(byLine[7]?.first).message.contains("found 6 words"))
        #expect(ScheduleFiles.parse("@daily lonely", file: "f").errors.first?.message.contains("expected a name and an action") == true)
        #expect(ScheduleFiles.parse("0 0 * * * x exec", file: "f").errors.first?.message.contains("expected a program") == true)
        #expect(ScheduleFiles.parse("0 0 * * * x retries=2", file: "f").errors.first?.message.contains("expected an action") == true)
        let action = try #require(byLine[8]?.first)
        #expect(action.column == 24)
        #expect(action.message.contains("\"run\""))
        let feb = try #require(byLine[9]?.first)
        #expect(feb.column == 5)
        #expect(feb.message.contains("day-of-month field"))
        #expect(try #require(byLine[11]?.first).message.contains("invalid timeout \"5x\""))
        #expect(try #require(byLine[12]?.first).message.contains("unknown time zone \"Nowhere/Land\""))
        let mail = try #require(byLine[13]?.first)
        #expect(mail.description == "ops.cron:13:1: unknown setting \"MAILTO\"; expected one of TZ, CRON_TZ, QUEUE, RETRIES, ATTEMPTS, TIMEOUT, MISSED, OVERLAP, PRIORITY, JITTER")
        #expect(try #require(byLine[14]?.first).message.contains("found 5 words"))
        #expect(try #require(byLine[14]?.first).column == 1)
        let duplicate = try #require(byLine[15]?.first)
        #expect(duplicate.column == 13)
        #expect(duplicate.message.contains("duplicate schedule name \"good-1\" (first defined at ops.cron:1)"))
        #expect(try #require(byLine[16]?.first).message.contains("more than 6 cron fields"))
        #expect(byLine[17]?.count == 2) // both bad options on one line are reported
    }

    @Test func nameThatLooksLikeAWeekday() throws {
        let (schedules, errors) = ScheduleFiles.parse("0 3 * * * mon exec true\n", file: "f")
        #expect(schedules.isEmpty)
        #expect(errors.count == 1)
        #expect(errors[0].column == 11)
        #expect(errors[0].message.contains("reads as a day-of-week field"))
    }

    @Test func duplicateNamesAcrossFiles() throws {
        let (schedules, errors) = ScheduleFiles.parse(files: [
            (file: "a.cron", contents: "@daily same exec true\n"),
            (file: "b.cron", contents: "# header\n@hourly same exec true\n@hourly other exec true\n"),
        ])
        #expect(schedules.map(\.name) == ["same", "other"])
        #expect(errors.map(\.description) == [
            "b.cron:2:9: duplicate schedule name \"same\" (first defined at a.cron:1); expected a name used by no other schedule",
        ])
    }

    @Test func loadDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rota-cron-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "@daily b-job exec true\n".write(toFile: dir + "/b.cron", atomically: true, encoding: .utf8)
        try "@daily a-job exec true\n0 99 * * * broken exec true\n".write(toFile: dir + "/a.cron", atomically: true, encoding: .utf8)
        try "not a schedule".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
        try "@daily hidden exec true\n".write(toFile: dir + "/.hidden.cron", atomically: true, encoding: .utf8)

        let (schedules, errors) = try ScheduleFiles.load(directory: dir)
        #expect(schedules.map(\.name) == ["a-job", "b-job"])
        #expect(schedules[0].file == dir + "/a.cron")
        #expect(errors.map(\.description) == ["\(dir)/a.cron:2:3: hour field: \"99\" is out of range (expected 0-23)"])

        let all = try ScheduleFiles.load(directory: dir, fileExtension: nil)
        #expect(all.errors.contains { $0.file == dir + "/notes.txt" })

        #expect(throws: ScheduleFileError.self) { try ScheduleFiles.load(directory: dir + "/missing") }
    }

    @Test func exampleSchedulesAreValid() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("schedules").path
        let (schedules, errors) = try ScheduleFiles.load(directory: root)
        #expect(errors.isEmpty, "\(errors.map(\.description).joined(separator: "\n"))")
        #expect(schedules.count >= 10)
        for schedule in schedules {
            let zone = try #require(schedule.zone)
            #expect(try schedule.cronExpression().next(after: Date(), in: zone) != nil, "\(schedule.name)")
        }
    }

    @Test(arguments: [
        ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604_800), ("1h30m", 5400), ("1d2h3m4s", 93784), ("10S", 10),
    ])
    func durations(text: String, seconds: Int) {
        #expect(ScheduleFiles.parseDuration(text) == seconds)
    }

    @Test func badDurations() {
        for text in ["", "10", "m", "0s", "5x", "1.5h", "-3m", "h1", "1h 30m"] {
            #expect(ScheduleFiles.parseDuration(text) == nil, "\(text)")
        }
    }

    @Test func commandSplitting() throws {
        func split(_ s: String) -> [String]? {
            if case .success(let words) = ScheduleFiles.splitCommand(ArraySlice(Array(s))) { return words }
            return nil
        }
        #expect(split("  a  b\tc ") == ["a", "b", "c"])
        #expect(split(#"echo "a b" 'c "d"' e\ f"#) == ["echo", "a b", #"c "d""#, "e f"])
        #expect(split(#"x"y"'z'"#) == ["xyz"])
        #expect(split(#"echo "\$HOME \n""#) == ["echo", #"$HOME \n"#])
        #expect(split("echo $HOME | wc") == ["echo", "$HOME", "|", "wc"])
        #expect(split("echo 'open") == nil)
        #expect(split("echo \\") == nil)
    }
}
