import Foundation
import Testing

/// `rota next`: fire instants of a cron expression, in UTC, strictly after --from.
@Suite struct NextCommandTests {
    private func next(_ arguments: String...) throws -> CronCLIRun {
        try CronCLIRun(["next"] + arguments)
    }

    @Test func printsTheNextInstantsInUTCOnePerLine() throws {
        // Friday 2026-11-27 17:40Z: the rest of Friday's office hours, then Monday morning.
        let run = try next("*/15 9-17 * * MON-FRI", "--from", "2026-11-27T17:40:00Z", "--count", "4")
        #expect(run.status == 0, "\(run)")
        #expect(run.lines == ["2026-11-27T17:45:00Z", "2026-11-30T09:00:00Z", "2026-11-30T09:15:00Z", "2026-11-30T09:30:00Z"])
        #expect(run.stderr.isEmpty)
    }

    @Test func explainPrintsTheExpressionInWordsBeforeTheInstants() throws {
        // Friday 2026-11-27 12:00Z: Monday and Tuesday 09:00 in Berlin (UTC+1 in winter).
        let run = try next("0 9 * * MON-FRI", "--tz", "Europe/Berlin", "--explain", "--from", "2026-11-27T12:00:00Z", "--count", "2")
        #expect(run.status == 0, "\(run)")
        #expect(run.lines == ["at 09:00 on Monday through Friday, Europe/Berlin", "2026-11-30T08:00:00Z", "2026-12-01T08:00:00Z"])
        let lastWeekday = try next("0 18 LW * *", "--explain", "--from", "2026-11-27T12:00:00Z", "--count", "1")
        #expect(lastWeekday.lines == ["at 18:00 on the last weekday of the month, UTC", "2026-11-30T18:00:00Z"], "\(lastWeekday)")
        let office = try next("*/15", "9-17", "*", "*", "*", "--explain", "--count", "1")
        #expect(office.lines.first == "every 15 minutes from 09:00 to 17:45, UTC", "\(office)")
    }

    @Test func isStrictlyAfterFrom() throws {
        let run = try next("@daily", "--from", "2026-01-01T00:00:00Z", "--count", "2")
        #expect(run.lines == ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"], "\(run)")
    }

    @Test func aMultiWordExpressionMayBeGivenUnquoted() throws {
        let run = try next("0", "12", "*", "*", "*", "--from", "2026-01-01T00:00:00Z", "--count", "1")
        #expect(run.lines == ["2026-01-01T12:00:00Z"], "\(run)")
    }

    @Test func sixFieldsStartWithSeconds() throws {
        let run = try next("*/10 * * * * *", "--from", "2026-05-01T10:00:00Z", "--count", "3")
        #expect(run.lines == ["2026-05-01T10:00:10Z", "2026-05-01T10:00:20Z", "2026-05-01T10:00:30Z"], "\(run)")
    }

    @Test func fromTakesAnOffsetOrZ() throws {
        let withOffset = try next("* * * * *", "--from", "2026-01-01T00:00:00+05:30", "--count", "1")
        let withZ = try next("* * * * *", "--from", "2025-12-31T18:30:00Z", "--count", "1")
        let compactOffset = try next("* * * * *", "--from", "2025-12-31T13:30:00-0500", "--count", "1")
        let fraction = try next("* * * * * *", "--from", "2025-12-31T18:30:00.999Z", "--count", "1")
        #expect(withOffset.lines == ["2025-12-31T18:31:00Z"], "\(withOffset)")
        #expect(withZ.lines == withOffset.lines)
        #expect(compactOffset.lines == withOffset.lines, "\(compactOffset)")
        #expect(fraction.lines == ["2025-12-31T18:30:01Z"], "\(fraction)")
    }

    @Test func withoutFromStartsNow() throws {
        let before = Date()
        let run = try next("* * * * * *", "--count", "1")
        #expect(run.status == 0)
        let first = try #require(run.lines.first.flatMap(cronCLIParseUTC))
        #expect(first > before.addingTimeInterval(-1) && first <= Date().addingTimeInterval(2))
    }

    @Test func countDefaultsToFive() throws {
        let run = try next("@hourly", "--from", "2026-01-01T00:00:00Z")
        #expect(run.lines.count == 5)
        #expect(run.lines.last == "2026-01-01T05:00:00Z")
    }

    @Test func countGoesUpTo100000() throws {
        let run = try next("* * * * *", "--from", "2026-01-01T00:00:00Z", "--count", "100000")
        #expect(run.status == 0)
        #expect(run.lines.count == 100_000)
        // 100000 minutes after 2026-01-01T00:00Z is 69 days, 10 hours, 40 minutes.
        #expect(run.lines.last == "2026-03-11T10:40:00Z")
    }

    @Test func aFixedTimeInTheSpringForwardGapRunsAtTheEndOfTheGap() throws {
        // 2026-03-08: New York skips 02:00-03:00 EST. 02:30 runs once that day, at 03:00 EDT.
        let run = try next("30 2 * * *", "--tz", "America/New_York", "--from", "2026-03-07T00:00:00-05:00", "--count", "3")
        #expect(run.lines == ["2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"], "\(run)")
    }

    @Test func anHourlyJobRunsInBothCopiesOfTheRepeatedHour() throws {
        // 2026-11-01: New York repeats 01:00-02:00 (EDT, then EST).
        let run = try next("@hourly", "--tz", "America/New_York", "--from", "2026-11-01T04:30:00Z", "--count", "3", "--local")
        #expect(run.lines == [
            "2026-11-01T05:00:00Z  2026-11-01T01:00:00-04:00 Sun",
            "2026-11-01T06:00:00Z  2026-11-01T01:00:00-05:00 Sun",
            "2026-11-01T07:00:00Z  2026-11-01T02:00:00-05:00 Sun",
        ], "\(run)")
    }

    @Test func aFixedTimeInTheRepeatedHourRunsOnce() throws {
        let run = try next("30 1 * * *", "--tz", "America/New_York", "--from", "2026-10-31T12:00:00Z", "--count", "2")
        #expect(run.lines == ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"], "\(run)")
    }

    @Test func localShowsTheWallClockWithItsOffset() throws {
        let run = try next("30 2 * * *", "--tz", "America/New_York", "--from", "2026-03-07T00:00:00-05:00", "--count", "2", "--local")
        #expect(run.lines == [
            "2026-03-07T07:30:00Z  2026-03-07T02:30:00-05:00 Sat",
            "2026-03-08T07:00:00Z  2026-03-08T03:00:00-04:00 Sun",
        ], "\(run)")
        // Half-hour offsets (Lord Howe's DST moves by 30 minutes).
        let howe = try next("0 12 * * *", "--tz", "Australia/Lord_Howe", "--from", "2026-01-01T00:00:00Z", "--count", "1", "--local")
        #expect(howe.lines.first?.hasPrefix("2026-01-01T01:00:00Z  2026-01-01T12:00:00+11:00 Thu") == true, "\(howe)")
        let utc = try next("@daily", "--from", "2026-01-01T00:00:00Z", "--count", "1", "--local")
        #expect(utc.lines.first?.hasPrefix("2026-01-02T00:00:00Z  2026-01-02T00:00:00+00:00 Fri") == true, "\(utc)")
    }

    // MARK: Errors: exit 2, nothing on stdout, the reason on stderr

    @Test(arguments: [
        (["61 * * * *"], "minute field"),
        (["0 0 30 2 *"], "day-of-month"),
        (["* * * *"], "cron expression"),
        (["@every_minute"], "@every_minute"),
        (["0 9 * * MON#6"], "day-of-week"),
        (["@daily", "--tz", "Mars/Olympus"], "unknown time zone \"Mars/Olympus\""),
        (["@daily", "--from", "yesterday"], "--from"),
        (["@daily", "--from", "2026-01-01T00:00:00"], "--from"),
        (["@daily", "--from", "2026-02-30T00:00:00Z"], "--from"),
        (["@daily", "--from", "2026-01-01T24:00:00Z"], "--from"),
        (["@daily", "--from", "2026-01-01T00:00:00+25:00"], "--from"),
        (["@daily", "--from", "2026-01-01T00:00:00Zjunk"], "--from"),
        (["@daily", "--count", "0"], "--count"),
        (["@daily", "--count", "100001"], "--count"),
        (["@daily", "--count", "-3"], "count"),
        ([String](), "expression"),
    ])
    func invalidInputExitsTwoWithTheReasonOnStderr(arguments: [String], mention: String) throws {
        let run = try CronCLIRun(["next"] + arguments)
        #expect(run.status == 2, "\(run)")
        #expect(run.stdout.isEmpty, "\(run)")
        #expect(run.stderr.contains(mention), "\(run)")
    }
}

/// One run of the built `rota` binary.
struct CronCLIRun: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    /// Runs `rota ARGS…` without ROTA_DB in its environment, stdout and stderr to files, and waits.
    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rota-croncli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = scratch.appendingPathComponent("stdout")
        let err = scratch.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = cronCLIBinary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["ROTA_DB"] = nil
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let outHandle = try FileHandle(forWritingTo: out)
        let errHandle = try FileHandle(forWritingTo: err)
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try outHandle.close()
        try errHandle.close()
        status = process.terminationStatus
        stdout = try String(contentsOf: out, encoding: .utf8)
        stderr = try String(contentsOf: err, encoding: .utf8)
    }

    /// stdout's lines, without the trailing empty one.
    var lines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) }

    /// stderr's lines, without the trailing empty one.
    var errorLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) }

    var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
}

/// The package root (the directory holding Package.swift above this file).
let cronCLIPackageRoot: URL = {
    var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while url.path != "/", !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
        url = url.deletingLastPathComponent()
    }
    return url
}()

/// The built `rota`: beside the running test executable, else `.build/debug/rota` under the package root.
let cronCLIBinary: URL = {
    let beside = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("rota")
    if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        let candidate = URL(fileURLWithPath: bundle.bundlePath).deletingLastPathComponent().appendingPathComponent("rota")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    return cronCLIPackageRoot.appendingPathComponent(".build/debug/rota")
}()

/// Parses `YYYY-MM-DDTHH:MM:SSZ`.
func cronCLIParseUTC(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: text)
}
