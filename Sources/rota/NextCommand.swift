import ArgumentParser
import Foundation
import RotaCron
import Rota
import RotaSQLiteStore

/// `rota next`: the next fire instants of a cron expression, the preview to reach for before writing a schedule.
struct NextCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "next",
        abstract: "Print the next fire instants of a cron expression.",
        discussion: """
            Prints the next COUNT instants strictly after --from (default: now), one
            per line, in UTC (YYYY-MM-DDTHH:MM:SSZ). The expression is read on the wall
            clock of --tz (default UTC), as in schedule files: 5 fields (minute hour
            day-of-month month day-of-week), 6 with leading seconds, or @yearly
            @monthly @weekly @daily @hourly. Quote it, or the shell expands '*'.

            --explain first prints the expression in words, on a line of its own
            (e.g. "at 09:00 on Monday through Friday, Europe/Berlin").

            An invalid expression or unknown zone exits 2 with the reason on stderr and
            nothing on stdout. If the expression matches nothing within 50 years, fewer
            instants are printed, with a note on stderr.

            Examples:
              rota next '*/15 9-17 * * MON-FRI' --tz Europe/Berlin
              rota next '30 2 * * *' --tz America/New_York --local \\
                  --from 2026-03-07T00:00:00-05:00 --count 3
              rota next @hourly --count 100000 | tail -1
              rota next '0 18 LW * *' --explain --count 1
            """
    )

    @Argument(help: ArgumentHelp("The cron expression (quote it; several words are joined with spaces).", valueName: "expression"))
    var expression: [String] = []

    @Option(name: .long, help: ArgumentHelp("The IANA time zone the expression is read in.", valueName: "zone"))
    var tz: String = "UTC"

    @Option(name: .long, help: ArgumentHelp("Start after this instant: ISO-8601 with Z or an offset (default: now).", valueName: "instant"))
    var from: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("How many instants to print, 1-\(NextCommand.maximumCount).", valueName: "k"))
    var count: Int = 5

    @Flag(name: .long, help: "Also print each instant on the zone's wall clock, with its UTC offset and weekday.")
    var local = false

    @Flag(name: .long, help: "First print the expression in words (its explanation), on a line of its own.")
    var explain = false

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
        var out = explain ? cron.explanation(timeZone: tz) + "\n" : ""
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

/// Instants as the cron commands print and read them (the formats and parsing of ``TimeText``).
enum CronCLITime {
    /// `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC).
    static func utc(_ date: Date) -> String { TimeText.isoSeconds(date) }

    /// The wall-clock time of `date` in `zone` with its offset and weekday: `2026-03-08T03:00:00-04:00 Sun`.
    static func local(_ date: Date, in zone: TimeZone) -> String {
        let offset = zone.secondsFromGMT(for: date)
        let shifted = Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down) + Double(offset))
        let sign = offset < 0 ? "-" : "+"
        let magnitude = abs(offset)
        var text = String(TimeText.isoSeconds(shifted).dropLast()) + sign
            + TimeText.pad(Int64(magnitude / 3600), 2) + ":" + TimeText.pad(Int64(magnitude % 3600 / 60), 2)
        if magnitude % 60 != 0 { text += ":" + TimeText.pad(Int64(magnitude % 60), 2) }
        let days = Civil.floorDiv(Int(shifted.timeIntervalSince1970), 86_400)
        let weekday = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][Civil.weekday(days: days)]
        return text + " " + weekday
    }

    /// Parses an ISO-8601 instant with a zone (see ``TimeText/parseInstant(_:field:)``).
    /// - Returns: The instant, or `nil` when the text is not one (or lacks the zone).
    static func parseInstant(_ text: String) -> Date? { try? TimeText.parseInstant(text, field: "--from") }
}
