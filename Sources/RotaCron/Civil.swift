import Foundation

/// Proleptic Gregorian calendar arithmetic on "naive" local wall-clock seconds
/// (seconds since 1970-01-01T00:00:00 of an unspecified zone). Foundation's `Calendar`
/// is avoided on purpose: it is slow on Linux and these few formulas are exact.
enum Civil {
    /// Days since 1970-01-01 for a Gregorian date (H. Hinnant's `days_from_civil`).
    @inline(__always)
    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
    @inline(__always)
    static func date(days z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Day of the week of a day count since 1970-01-01, 0 = Sunday … 6 = Saturday.
    @inline(__always)
    static func weekday(days: Int) -> Int {
        let r = (days + 4) % 7
        return r < 0 ? r + 7 : r
    }

    @inline(__always)
    static func isLeap(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    /// The number of days in a month.
    @inline(__always)
    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Floor division.
    @inline(__always)
    static func floorDiv(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// Splits naive seconds into its calendar fields.
    @inline(__always)
    static func fields(_ naive: Int) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        let days = floorDiv(naive, 86_400)
        let secs = naive - days * 86_400
        let d = date(days: days)
        return (d.year, d.month, d.day, secs / 3600, (secs / 60) % 60, secs % 60)
    }

    /// Naive seconds of calendar fields.
    @inline(__always)
    static func naive(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Int {
        days(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second
    }
}

/// A forward-looking cache of a time zone's UTC offsets, so consecutive cron computations ask
/// Foundation only when they cross a transition. Instants are whole Unix seconds.
struct ZoneCursor {
    let zone: TimeZone
    /// A known span `[start, end)` of constant `offset` (start may be later than the real transition).
    private var start = Int.max
    private var end = Int.min
    private var offset = 0

    init(_ zone: TimeZone) {
        self.zone = zone
    }

    /// The span of constant offset that contains `t`: `[start, end)` (start is a lower bound known
    /// to share the offset, end is the next transition or `Int.max`).
    mutating func span(containing t: Int) -> (start: Int, end: Int, offset: Int) {
        if t >= start && t < end { return (start, end, offset) }
        let date = Date(timeIntervalSince1970: TimeInterval(t))
        let o = zone.secondsFromGMT(for: date)
        let e: Int
        if let next = zone.nextDaylightSavingTimeTransition(after: date) {
            e = max(t + 1, Int(next.timeIntervalSince1970.rounded(.down))) // always move forward
        } else {
            e = Int.max
        }
        start = t
        end = e
        offset = o
        return (start, end, offset)
    }

    /// The UTC offset in seconds at instant `t`.
    @inline(__always)
    mutating func offset(at t: Int) -> Int { span(containing: t).offset }

    /// The instant a local wall-clock time names: the earliest instant showing it; for a time
    /// skipped by a transition (a gap), the first instant after the gap.
    mutating func resolve(naive: Int) -> Int {
        if start != Int.max, end != Int.min {
            // Fast path: well inside the cached span (a day past its start, so no earlier copy).
            let t = naive - offset
            if t >= start + 86_400 && t < end { return t }
        }
        var t = naive - 2 * 86_400
        var first = true
        for _ in 0..<16 { // a handful of spans at most, even in zones with several changes a day
            let s = span(containing: t)
            if naive < t + s.offset && !first { return t } // in the gap just before this span
            if s.end == Int.max || naive < s.end + s.offset { return naive - s.offset }
            t = s.end
            first = false
        }
        return naive - offset(at: naive - offset(at: naive))
    }
}
