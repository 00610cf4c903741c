import ArgumentParser
import Foundation
import Rota

/// `rota next`: the next fire instants of a cron expression, the preview to reach for before writing a schedule.
struct NextCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "next",
        abstract: "Print the next fire instants of a cron expression.",
        discussion: """
            Prints the next COUNT instants strictly after --from (default: now), one per line, in UTC (YYYY-MM-DDTHH:MM:SSZ). The expression is read on the wall clock of --tz (default UTC), as in schedule files: 5 fields (minute hour day-of-month month day-of-week), 6 with leading seconds, or @yearly @monthly @weekly @daily @hourly. Quote it, or the shell expands '*'.

            An invalid expression or unknown zone exits 2 with the reason on stderr and nothing on stdout. If the expression matches nothing within 50 years, fewer instants are printed, with a note on stderr.

            Examples:
              rota next '*/15 9-17 * * MON-FRI' --tz Europe/Berlin
              rota next '30 2 * * *' --tz America/New_York --local \\
                  --from 2026-03-07T00:00:00-05:00 --count 3
              rota next @hourly --count 100000 | tail -1
            """
    )

    @Argument(help: ArgumentHelp("The cron expression (quote it; several words are joined with spaces).", valueName: "expression"))
    var expression: [String] = []

    @Option(name: .long, help: ArgumentHelp("The IANA time zone the expression is read in.", valueName: "zone"))
    var tz: String = "UTC"

    @Option(name: .long, help: ArgumentHelp("Start after this instant: ISO-8601 with Z or an offset (default: now).", valueName: "instant"))
    var from: String?

    @Option(name: .long, help: ArgumentHelp("How many instants to print, 1-\(NextCommand.maximumCount).", valueName: "k"))
    var count: Int = 5

    @Flag(name: .long, help: "Also print each instant on the zone's wall clock, with its UTC offset and weekday.")
    var local = false

    /// The largest `--count`.
    static let maximumCount = 100_000

    func validate() throws {
        guard !expression.isEmpty else {
            throw ValidationError("Missing the cron expression, e.g. rota next '0 9 * * MON-FRI'.")
        }
        guard count >= 1, count <= Self.maximumCount else {
            throw ValidationError("--count must be between 1 and \(Self.maximumCount), got \(count).")
        }
    }

    func run() throws {
        let text = expression.joined(separator: " ")
        let cron: CronExpression
        do {
            cron = try CronExpression(text)
        } catch let error as CronError {
            throw CLIError.usage(error.description)
        }
        guard let zone = TimeZone(identifier: tz) else {
            throw CLIError.usage("unknown time zone \"\(tz)\" (expected an IANA zone such as UTC, Europe/Berlin or America/New_York)")
        }
        let start: Date
        if let from {
            guard let parsed = CronCLITime.parseInstant(from) else {
                throw CLIError.usage("--from: \"\(from)\" is not an instant (expected ISO-8601 with Z or an offset, "
                    + "e.g. 2026-03-08T06:00:00Z or 2026-03-08T01:00:00-05:00)")
            }
            start = parsed
        } else {
            start = Date()
        }
        let fires = cron.fires(after: start, in: zone, count: count)
        var out = ""
        out.reserveCapacity(fires.count * (local ? 60 : 21))
        for fire in fires {
            out += CronCLITime.utc(fire)
            if local { out += "  " + CronCLITime.local(fire, in: zone) }
            out += "\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
        if fires.count < count {
            let after = fires.last.map(CronCLITime.utc) ?? CronCLITime.utc(start)
            printError("no fire within 50 years after \(after); printed \(fires.count) of \(count)")
        }
    }
}

/// Instants as the cron commands print and read them.
enum CronCLITime {
    /// `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC).
    static func utc(_ date: Date) -> String {
        let seconds = Int64((date.timeIntervalSince1970).rounded(.down))
        return civilText(seconds) + "Z"
    }

    /// The wall-clock time of `date` in `zone` with its offset and weekday: `2026-03-08T03:00:00-04:00 Sun`.
    static func local(_ date: Date, in zone: TimeZone) -> String {
        let offset = zone.secondsFromGMT(for: date)
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down)) + Int64(offset)
        let sign = offset < 0 ? "-" : "+"
        let magnitude = abs(offset)
        var text = civilText(seconds) + sign + pad(Int64(magnitude / 3600), 2) + ":" + pad(Int64(magnitude % 3600 / 60), 2)
        if magnitude % 60 != 0 { text += ":" + pad(Int64(magnitude % 60), 2) }
        let days = floorDivide(seconds, 86_400).quotient
        let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][Int(floorDivide(days, 7).remainder)]
        return text + " " + weekday
    }

    /// Parses an ISO-8601 instant with a zone: `YYYY-MM-DDTHH:MM[:SS[.fraction]]` followed by `Z` or an offset
    /// `±HH:MM`, `±HHMM` or `±HH`. A space may stand for the `T`.
    /// - Returns: The instant, or `nil` when the text is not one (or lacks the zone).
    static func parseInstant(_ text: String) -> Date? {
        let c = Array(text.trimmingCharacters(in: .whitespaces))
        var i = 0
        func digits(_ n: Int) -> Int64? {
            guard i + n <= c.count else { return nil }
            var value: Int64 = 0
            for k in i..<(i + n) {
                guard let d = c[k].wholeNumberValue, c[k].isASCII else { return nil }
                value = value * 10 + Int64(d)
            }
            i += n
            return value
        }
        func take(_ ch: Character) -> Bool {
            guard i < c.count, c[i] == ch else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), take("-"), let month = digits(2), take("-"), let day = digits(2) else { return nil }
        guard take("T") || take("t") || take(" ") else { return nil }
        guard let hour = digits(2), take(":"), let minute = digits(2) else { return nil }
        var second: Int64 = 0
        var fraction = 0.0
        if take(":") {
            guard let s = digits(2) else { return nil }
            second = s
            if take(".") || take(",") {
                var scale = 0.1
                let before = i
                while i < c.count, c[i].isASCII, let d = c[i].wholeNumberValue {
                    fraction += Double(d) * scale
                    scale /= 10
                    i += 1
                }
                guard i > before else { return nil }
            }
        }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
              hour <= 23, minute <= 59, second <= 59 else { return nil }
        var offset: Int64
        if take("Z") || take("z") {
            offset = 0
        } else if i < c.count, c[i] == "+" || c[i] == "-" {
            let negative = c[i] == "-"
            i += 1
            guard let oh = digits(2), oh <= 23 else { return nil }
            var om: Int64 = 0
            if i < c.count {
                _ = take(":")
                guard let m = digits(2), m <= 59 else { return nil }
                om = m
            }
            offset = (oh * 3600 + om * 60) * (negative ? -1 : 1)
        } else {
            return nil
        }
        guard i == c.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: TimeInterval(seconds) + fraction)
    }

    /// `YYYY-MM-DDTHH:MM:SS` of Unix seconds `seconds` read as UTC.
    private static func civilText(_ seconds: Int64) -> String {
        let (days, secondOfDay) = floorDivide(seconds, 86_400)
        let (y, m, d) = civil(fromDays: days)
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay % 3600 / 60, 2)):\(pad(secondOfDay % 60, 2))"
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> (quotient: Int64, remainder: Int64) {
        let q = a >= 0 ? a / b : -((-a + b - 1) / b)
        return (q, a - q * b)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    private static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDivide(y, 400).quotient
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = floorDivide(z, 146_097).quotient
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}
