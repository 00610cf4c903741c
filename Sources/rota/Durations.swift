import Foundation

/// Parsing and printing of durations (`90s`, `15m`, `2h`, `7d`, `1h30m`) and instants (ISO-8601).
enum TimeText {
    /// The units a duration may use, with their length in milliseconds. Longest suffix first for matching.
    private static let units: [(suffix: String, millis: Int64)] = [
        ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000),
    ]

    /// Parses a duration such as `90s`, `15m`, `2h`, `7d`, `1w`, `500ms`, or a combination like `1h30m`.
    ///
    /// - Parameter field: the option name, for the error message.
    /// - Returns: the duration in milliseconds (0 or more).
    /// - Throws: ``CLIError/usage(_:)`` naming the option and the expected form.
    static func parseDuration(_ text: String, field: String) throws -> Int64 {
        let expected = "expected a duration like 90s, 15m, 2h, 7d or 1h30m (units ms, s, m, h, d, w)"
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard !trimmed.isEmpty else { throw CLIError.usage("\(field): empty duration; \(expected)") }
        var total: Int64 = 0
        var rest = Substring(trimmed)
        while !rest.isEmpty {
            let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
            guard !digits.isEmpty, let number = Int64(digits) else {
                throw CLIError.usage("\(field): '\(text)' is not a duration; \(expected)")
            }
            rest = rest.dropFirst(digits.count)
            let letters = rest.prefix(while: { $0.isLetter })
            guard let unit = units.first(where: { $0.suffix == letters }) else {
                let hint = letters.isEmpty ? " (a unit is required: \(digits)s? \(digits)m?)" : ""
                throw CLIError.usage("\(field): '\(text)' is not a duration\(hint); \(expected)")
            }
            rest = rest.dropFirst(letters.count)
            let (part, overflow1) = number.multipliedReportingOverflow(by: unit.millis)
            let (sum, overflow2) = total.addingReportingOverflow(part)
            guard !overflow1, !overflow2 else { throw CLIError.usage("\(field): '\(text)' is too long a duration") }
            total = sum
        }
        return total
    }

    /// A short duration for people: `850ms`, `12.5s`, `3m12s`, `2h5m`, `3d4h`.
    static func formatDuration(millis: Int64) -> String {
        let ms = abs(millis)
        let sign = millis < 0 ? "-" : ""
        if ms < 1000 { return "\(sign)\(ms)ms" }
        if ms < 60_000 {
            let tenths = ms / 100
            return tenths % 10 == 0 || ms >= 10_000 ? "\(sign)\(ms / 1000)s" : "\(sign)\(tenths / 10).\(tenths % 10)s"
        }
        let seconds = ms / 1000
        if seconds < 3600 { return "\(sign)\(seconds / 60)m" + (seconds % 60 == 0 ? "" : "\(seconds % 60)s") }
        let minutes = seconds / 60
        if minutes < 1440 { return "\(sign)\(minutes / 60)h" + (minutes % 60 == 0 ? "" : "\(minutes % 60)m") }
        let hours = minutes / 60
        return "\(sign)\(hours / 24)d" + (hours % 24 == 0 ? "" : "\(hours % 24)h")
    }

    /// An age in one or two units, for relative times: `45s`, `3m`, `2h5m`, `3d4h`.
    static func formatAge(millis: Int64) -> String {
        let seconds = abs(millis) / 1000
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m" }
        let minutes = seconds / 60
        if minutes < 1440 { return "\(minutes / 60)h" + (minutes % 60 == 0 ? "" : "\(minutes % 60)m") }
        let hours = minutes / 60
        return "\(hours / 24)d" + (hours % 24 == 0 ? "" : "\(hours % 24)h")
    }

    /// `date` relative to `now`: `3m ago`, `in 5s`, `now`.
    static func relative(_ date: Date, now: Date) -> String {
        let delta = date.unixMillis - now.unixMillis
        if abs(delta) < 1000 { return "now" }
        return delta < 0 ? "\(formatAge(millis: delta)) ago" : "in \(formatAge(millis: delta))"
    }

    /// An ISO-8601 UTC string with milliseconds, as `--json` prints instants: `2026-11-25T12:00:03.120Z`.
    static func iso(_ date: Date) -> String {
        let ms = date.unixMillis
        let (days, msOfDay) = floorDivide(ms, 86_400_000)
        let (y, m, d) = civil(fromDays: days)
        let h = msOfDay / 3_600_000, mi = msOfDay / 60_000 % 60, s = msOfDay / 1000 % 60, f = msOfDay % 1000
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).\(pad(f, 3))Z"
    }

    /// An instant for people, in UTC to the second: `2026-11-25 12:00:03Z`.
    static func humanInstant(_ date: Date) -> String {
        let text = iso(date)
        return String(text.prefix(10)) + " " + String(text.dropFirst(11).prefix(8)) + "Z"
    }

    /// Parses an ISO-8601 instant with a zone: `2026-11-25T12:00:00Z`, `2026-11-25T13:00:00.5+01:00`,
    /// `2026-11-25 12:00Z`.
    ///
    /// - Throws: ``CLIError/usage(_:)`` naming the option; a time without `Z` or an offset is refused as ambiguous.
    static func parseInstant(_ text: String, field: String) throws -> Date {
        let expected = "expected an ISO-8601 instant with a zone, like 2026-11-25T14:30:00Z or 2026-11-25T15:30:00+01:00"
        func fail(_ why: String = "") -> CLIError {
            CLIError.usage("\(field): '\(text)' is not an instant\(why); \(expected)")
        }
        let chars = Array(text.trimmingCharacters(in: .whitespaces))
        func number(_ count: Int, at index: inout Int) -> Int64? {
            guard index + count <= chars.count else { return nil }
            let slice = chars[index..<index + count]
            guard slice.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            index += count
            return Int64(String(slice))
        }
        func expect(_ c: Character, at index: inout Int, optional: Bool = false) -> Bool {
            if index < chars.count, chars[index] == c { index += 1; return true }
            return optional
        }
        var i = 0
        guard let year = number(4, at: &i), expect("-", at: &i), let month = number(2, at: &i), expect("-", at: &i),
              let day = number(2, at: &i) else { throw fail() }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year) else {
            throw fail(" (no such date)")
        }
        guard i < chars.count, ["T", "t", " "].contains(chars[i]) else {
            throw fail(i == chars.count ? " (a time and zone are required)" : "")
        }
        i += 1
        guard let hour = number(2, at: &i), expect(":", at: &i), let minute = number(2, at: &i) else { throw fail() }
        var second: Int64 = 0
        var millis: Int64 = 0
        if i < chars.count, chars[i] == ":" {
            i += 1
            guard let s = number(2, at: &i) else { throw fail() }
            second = s
            if i < chars.count, chars[i] == "." || chars[i] == "," {
                i += 1
                let start = i
                while i < chars.count, chars[i].isASCII, chars[i].isNumber { i += 1 }
                guard i > start else { throw fail() }
                let fraction = String(chars[start..<i]).padding(toLength: 3, withPad: "0", startingAt: 0)
                millis = Int64(fraction.prefix(3)) ?? 0
            }
        }
        guard hour < 24, minute < 60, second < 61 else { throw fail(" (no such time)") }
        var offsetMinutes: Int64 = 0
        guard i < chars.count else { throw fail(" (add Z for UTC or an offset like +02:00)") }
        if chars[i] == "Z" || chars[i] == "z" {
            i += 1
        } else if chars[i] == "+" || chars[i] == "-" {
            let sign: Int64 = chars[i] == "-" ? -1 : 1
            i += 1
            guard let oh = number(2, at: &i) else { throw fail() }
            var om: Int64 = 0
            if i < chars.count {
                _ = expect(":", at: &i, optional: true)
                guard let m = number(2, at: &i) else { throw fail() }
                om = m
            }
            guard oh < 24, om < 60 else { throw fail(" (bad offset)") }
            offsetMinutes = sign * (oh * 60 + om)
        } else {
            throw fail()
        }
        guard i == chars.count else { throw fail() }
        let days = daysFromCivil(year: year, month: month, day: day)
        let ms = ((days * 24 + hour) * 60 + minute - offsetMinutes) * 60_000 + second * 1000 + millis
        return Date(unixMillis: ms)
    }

    // MARK: Calendar arithmetic (proleptic Gregorian, UTC; Howard Hinnant's algorithms)

    private static func floorDivide(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        let q = a >= 0 ? a / b : (a - b + 1) / b
        return (q, a - q * b)
    }

    private static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d)
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
