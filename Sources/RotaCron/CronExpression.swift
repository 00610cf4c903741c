import Foundation

/// A cron expression with Debian cron semantics, as the Python library cronsim implements them.
///
/// Accepted forms:
/// - 5 fields: `minute hour day-of-month month day-of-week`;
/// - 6 fields: `second minute hour day-of-month month day-of-week`;
/// - the macros `@yearly` (= `@annually`, `0 0 1 1 *`), `@monthly` (`0 0 1 * *`), `@weekly` (`0 0 * * 0`),
///   `@daily` (= `@midnight`, `0 0 * * *`) and `@hourly` (`0 * * * *`).
///
/// Each field is a comma-separated list of `*`, a value, a range `a-b`, or a step `*/n`, `a-b/n`, `a/n`
/// (`a/n` means `a-max/n`). Months take `JAN`–`DEC`, weekdays `SUN`–`SAT` (any case); weekdays 0 and 7
/// are both Sunday. The day-of-month field also takes `L` (last day of the month) and `LW` (last weekday,
/// Monday–Friday, of the month); the day-of-week field takes `nL` (the last weekday `n` of the month, `n`
/// a number 0–7, e.g. `5L` = last Friday) and `D#n` (the `n`-th weekday `D` of the month, `n` 1–5).
///
/// Day matching: when both day fields are restricted they combine with OR (either may match); when either
/// field starts with `*` they combine with AND.
///
/// Time zones and daylight saving time:
/// - A *fixed-time* job (5-field form whose minute and hour fields do not start with `*`, e.g. `30 2 * * *`)
///   follows the wall clock: a time skipped by a spring-forward gap fires once at the first instant after the
///   gap, and a time repeated by a fall-back overlap fires once, at its first occurrence.
/// - Every other expression (wildcard minute or hour, or the 6-field form) fires on real elapsed time: at every
///   instant whose local wall-clock time matches, so `@hourly` fires in both copies of a repeated hour and not
///   at all in a skipped one.
///
/// Computation jumps field by field on local wall-clock fields (no per-minute stepping, no `Calendar`), and
/// gives up (returns `nil`) when nothing matches within 50 years.
///
/// Deliberate differences from cronsim 2.8 (checked by a differential test on thousands of cases):
/// - results are always strictly after the start instant (started inside the second copy of a repeated hour,
///   cronsim returns the first copy of a fixed-time job, which is earlier);
/// - in zones whose transitions are not on the hour (Australia/Lord_Howe, Pacific/Chatham), a real-time
///   expression fires at every matching local time after a transition, where cronsim's hour-by-hour stepping
///   skips some (e.g. `* 3 * * *` at 03:45–03:59 on Chatham's spring-forward day);
/// - `a-a/n` is just `a` (cronsim reads it as `a/n`), and `L/n`, `LW/n` are rejected (cronsim ignores the step).
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression exactly as given to ``init(_:)``.
    public let text: String

    // Bit masks of the accepted values of each field (read by the explainer too).
    let seconds: UInt64
    let minutes: UInt64
    let hours: UInt64
    let monthDays: UInt64 // bits 1...31
    let lastDay: Bool // L
    let lastWeekday: Bool // LW
    let months: UInt64 // bits 1...12
    let weekdays: UInt64 // bits 0...6
    let lastWeekdays: UInt64 // nL, bits 0...6
    let nthWeekdays: UInt64 // D#n, bit (n - 1) * 7 + D
    let daysCombineWithAnd: Bool
    private let followsWallClock: Bool
    private let sixFields: Bool

    /// Whether the expression has the leading seconds field (the 6-field form).
    public var hasSeconds: Bool { sixFields }

    /// The expression as given.
    public var description: String { text }

    /// Parses a cron expression.
    /// - Parameter text: 5 or 6 whitespace-separated fields, or one of the `@` macros.
    /// - Throws: ``CronError`` naming the field, the bad part and what was expected.
    public init(_ text: String) throws {
        self.text = text
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        var parts = trimmed.uppercased().split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
            .map(String.init)
        if parts.count == 1, parts[0].hasPrefix("@") {
            guard let expanded = CronExpression.macros[parts[0].lowercased()] else {
                throw CronError(
                    field: nil, part: trimmed, problem: "is not a known macro",
                    expected: "@yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly")
            }
            parts = expanded.split(separator: " ").map(String.init)
        }
        guard parts.count == 5 || parts.count == 6 else {
            throw CronError(
                field: nil, part: trimmed,
                problem: parts.isEmpty ? "is empty" : "has \(parts.count) field\(parts.count == 1 ? "" : "s")",
                expected: "5 fields (minute hour day-of-month month day-of-week), 6 with a leading seconds field, "
                    + "or a macro such as @daily")
        }
        sixFields = parts.count == 6
        if !sixFields { parts.insert("0", at: 0) }
        let second, minute, hour, dom, month, dow: FieldParser.Result
        do {
            second = try FieldParser(.second).parse(parts[0])
            minute = try FieldParser(.minute).parse(parts[1])
            hour = try FieldParser(.hour).parse(parts[2])
            dom = try FieldParser(.dayOfMonth).parse(parts[3])
            month = try FieldParser(.month).parse(parts[4])
            dow = try FieldParser(.dayOfWeek).parse(parts[5])
        } catch let error as CronError {
            // Fields are parsed in upper case; quote the part as the user wrote it.
            let written = trimmed.range(of: error.part, options: .caseInsensitive).map { String(trimmed[$0]) } ?? error.part
            throw CronError(field: error.field, part: written, problem: error.problem, expected: error.expected)
        }
        seconds = second.values
        minutes = minute.values
        hours = hour.values
        monthDays = dom.values
        lastDay = dom.last
        lastWeekday = dom.lastWeekday
        months = month.values
        // Fold 7 (Sunday) onto 0.
        weekdays = (dow.values & 0x7F) | ((dow.values >> 7) & 1)
        lastWeekdays = dow.lastWeekdays
        nthWeekdays = dow.nth
        daysCombineWithAnd = parts[3].hasPrefix("*") || parts[5].hasPrefix("*")
        followsWallClock = !sixFields && !parts[1].hasPrefix("*") && !parts[2].hasPrefix("*")

        // A day of month that no selected month has can never match when both day fields must match.
        if daysCombineWithAnd && !dom.last && !dom.lastWeekday {
            let minDay = monthDays.trailingZeroBitCount
            var longest = 0
            for m in 1...12 where months & (1 << UInt64(m)) != 0 {
                longest = max(longest, m == 2 ? 29 : Civil.daysInMonth(year: 2001, month: m))
            }
            if minDay > longest {
                throw CronError(
                    field: .dayOfMonth, part: parts[3],
                    problem: "cannot occur in the given month\(months.nonzeroBitCount == 1 ? "" : "s") (\(parts[4]))",
                    expected: "a day of month of at most \(longest)")
            }
        }
    }

    static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    // MARK: - Public computation

    /// The first fire instant strictly after `date`, computed in `timeZone`.
    /// - Parameters:
    ///   - date: The instant to start from; it is never returned itself. Fractions of a second are allowed.
    ///   - timeZone: The zone whose wall clock the expression describes.
    /// - Returns: The next fire instant (always a whole second), or `nil` if nothing matches within 50 years.
    public func next(after date: Date, in timeZone: TimeZone) -> Date? {
        var cursor = ZoneCursor(timeZone)
        return next(after: CronExpression.seconds(date), cursor: &cursor).map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }

    /// The next `count` fire instants strictly after `date`, in increasing order; fewer if the
    /// sequence ends (nothing matches within 50 years of the last instant).
    /// - Parameters:
    ///   - date: The instant to start from; it is never returned itself.
    ///   - timeZone: The zone whose wall clock the expression describes.
    ///   - count: How many instants to return at most.
    public func fires(after date: Date, in timeZone: TimeZone, count: Int) -> [Date] {
        var cursor = ZoneCursor(timeZone)
        var result: [Date] = []
        result.reserveCapacity(max(0, min(count, 100_000)))
        var t = CronExpression.seconds(date)
        while result.count < count, let n = next(after: t, cursor: &cursor) {
            result.append(Date(timeIntervalSince1970: TimeInterval(n)))
            t = n
        }
        return result
    }

    /// The last fire instant strictly before `date` (and at most 50 years before it), computed in
    /// `timeZone`; `nil` if there is none. It is the instant `f` with `next(after: f - 1s) == f` closest to
    /// `date`, found by bisection over ``next(after:in:)``, so the two always agree.
    public func previous(before date: Date, in timeZone: TimeZone) -> Date? {
        var cursor = ZoneCursor(timeZone)
        let t = date.timeIntervalSince1970.rounded(.up)
        let before = Int(max(min(t, 1e15), -1e15)) // fires < before are strictly before `date`
        return previous(before: before, notBefore: before - 51 * 366 * 86_400, cursor: &cursor)
            .map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }

    // MARK: - Internals

    static func seconds(_ date: Date) -> Int {
        let t = date.timeIntervalSince1970.rounded(.down)
        return Int(max(min(t, 1e15), -1e15))
    }

    /// The next fire after Unix second `s`.
    func next(after s: Int, cursor: inout ZoneCursor) -> Int? {
        if followsWallClock {
            // Iterate wall-clock times; map each to the instant it names (gap → first instant after it,
            // overlap → first copy), and skip those not after `s` (a start inside a repeated hour).
            let naive0 = s + cursor.offset(at: s)
            let limitYear = Civil.fields(naive0 + 1).year + 50
            var x = naive0 + 1
            while true {
                guard let local = nextLocal(from: x, limitYear: limitYear) else { return nil }
                let t = cursor.resolve(naive: local)
                if t > s { return t }
                x = local + 1
            }
        } else {
            // Real elapsed time: walk the spans of constant UTC offset forward.
            var t = s + 1
            var span = cursor.span(containing: t)
            let limitYear = Civil.fields(t + span.offset).year + 50
            while true {
                guard let local = nextLocal(from: t + span.offset, limitYear: limitYear) else { return nil }
                if span.end == Int.max || local < span.end + span.offset { return local - span.offset }
                t = span.end
                span = cursor.span(containing: t)
            }
        }
    }

    @inline(__always)
    private static func nextBit(_ mask: UInt64, after x: Int) -> Int? {
        guard x < 63 else { return nil }
        let m = mask & (~UInt64(0) << UInt64(x + 1))
        return m == 0 ? nil : m.trailingZeroBitCount
    }

    @inline(__always)
    private func dayMatches(day: Int, weekday: Int, daysInMonth dim: Int) -> Bool {
        var dom = monthDays & (1 << UInt64(day)) != 0
        if !dom && lastDay && day == dim { dom = true }
        if !dom && lastWeekday && day >= dim - 2 {
            // The last Monday–Friday of the month.
            let lastDow = (weekday + dim - day) % 7
            let target = lastDow == 0 ? dim - 2 : (lastDow == 6 ? dim - 1 : dim)
            dom = day == target
        }
        if daysCombineWithAnd && !dom { return false }
        var dow = weekdays & (1 << UInt64(weekday)) != 0
        if !dow && lastWeekdays & (1 << UInt64(weekday)) != 0 && day + 7 > dim { dow = true }
        if !dow && nthWeekdays != 0 {
            let n = (day + 6) / 7
            dow = nthWeekdays & (1 << UInt64((n - 1) * 7 + weekday)) != 0
        }
        return daysCombineWithAnd ? dow : (dom || dow)
    }

    /// The first local wall-clock time (naive seconds) at or after `x` matching every field, or `nil`
    /// past the end of `limitYear`.
    func nextLocal(from x: Int, limitYear: Int) -> Int? {
        var (y, mo, d, h, mi, s) = Civil.fields(x)
        while true {
            if y > limitYear { return nil }
            if months & (1 << UInt64(mo)) == 0 {
                if let m = CronExpression.nextBit(months, after: mo) {
                    mo = m
                } else {
                    y += 1
                    mo = months.trailingZeroBitCount
                }
                d = 1; h = 0; mi = 0; s = 0
                continue
            }
            let dim = Civil.daysInMonth(year: y, month: mo)
            if d > dim {
                mo += 1
                if mo > 12 { mo = 1; y += 1 }
                d = 1; h = 0; mi = 0; s = 0
                continue
            }
            let firstWeekday = Civil.weekday(days: Civil.days(year: y, month: mo, day: 1))
            if !dayMatches(day: d, weekday: (firstWeekday + d - 1) % 7, daysInMonth: dim) {
                var found = 0
                var dd = d + 1
                while dd <= dim {
                    if dayMatches(day: dd, weekday: (firstWeekday + dd - 1) % 7, daysInMonth: dim) {
                        found = dd
                        break
                    }
                    dd += 1
                }
                if found == 0 {
                    d = dim + 1
                    continue
                }
                d = found; h = 0; mi = 0; s = 0
            }
            if hours & (1 << UInt64(h)) == 0 {
                if let n = CronExpression.nextBit(hours, after: h), n < 24 {
                    h = n; mi = 0; s = 0
                } else {
                    d += 1; h = 0; mi = 0; s = 0
                    continue
                }
            }
            if minutes & (1 << UInt64(mi)) == 0 {
                if let n = CronExpression.nextBit(minutes, after: mi), n < 60 {
                    mi = n; s = 0
                } else {
                    h += 1; mi = 0; s = 0
                    if h == 24 { h = 0; d += 1 }
                    continue
                }
            }
            if seconds & (1 << UInt64(s)) == 0 {
                if let n = CronExpression.nextBit(seconds, after: s), n < 60 {
                    s = n
                } else {
                    mi += 1; s = 0
                    if mi == 60 {
                        mi = 0; h += 1
                        if h == 24 { h = 0; d += 1 }
                    }
                    continue
                }
            }
            return Civil.naive(year: y, month: mo, day: d, hour: h, minute: mi, second: s)
        }
    }
}

/// Parses one field of a cron expression into bit masks.
struct FieldParser {
    struct Result {
        var values: UInt64 = 0
        var last = false
        var lastWeekday = false
        var lastWeekdays: UInt64 = 0
        var nth: UInt64 = 0
    }

    let field: CronError.Field
    let low: Int
    let high: Int

    init(_ field: CronError.Field) {
        self.field = field
        switch field {
        case .second, .minute: (low, high) = (0, 59)
        case .hour: (low, high) = (0, 23)
        case .dayOfMonth: (low, high) = (1, 31)
        case .month: (low, high) = (1, 12)
        case .dayOfWeek: (low, high) = (0, 7)
        }
    }

    static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

    var expectedValue: String {
        switch field {
        case .second, .minute: return "a number 0-59"
        case .hour: return "a number 0-23"
        case .dayOfMonth: return "a number 1-31, L or LW"
        case .month: return "a number 1-12 or JAN-DEC"
        case .dayOfWeek: return "a number 0-7 (0 and 7 are Sunday) or SUN-SAT, nL or D#n"
        }
    }

    func error(_ part: Substring, _ problem: String, _ expected: String? = nil) -> CronError {
        CronError(field: field, part: String(part), problem: problem, expected: expected ?? expectedValue)
    }

    func parse(_ text: String) throws -> Result {
        var result = Result()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            if item.isEmpty {
                throw error(Substring(text), "has an empty list item", "comma-separated items such as 1,5,10")
            }
            try parseItem(item, into: &result)
        }
        return result
    }

    func number(_ s: Substring) -> Int? {
        guard !s.isEmpty, s.count <= 4, s.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
        return Int(s)
    }

    /// One value: a number in range or a name.
    func value(_ s: Substring, in whole: Substring) throws -> Int {
        if field == .month, let i = FieldParser.monthNames.firstIndex(of: String(s)) { return i + 1 }
        if field == .dayOfWeek, let i = FieldParser.dayNames.firstIndex(of: String(s)) { return i }
        if s.isEmpty { throw error(whole, "is missing a value") }
        guard let n = number(s) else {
            throw error(whole == s ? s : whole, whole == s ? "is not a valid value" : "contains \"\(s)\", not a valid value")
        }
        guard n >= low && n <= high else {
            throw error(whole, whole == s ? "is out of range" : "has \(n) out of range", "\(low)-\(high)")
        }
        return n
    }

    func parseItem(_ item: Substring, into result: inout Result) throws {
        if item == "*" {
            result.values |= mask(low, high, 1)
            return
        }
        if field == .dayOfWeek && item.contains("L") {
            let n = item.dropLast()
            guard item.last == "L", let v = number(n) else {
                throw error(item, "is not a valid last-weekday item", "nL with n a weekday number 0-7, e.g. 5L for the last Friday")
            }
            guard v <= 7 else { throw error(item, "names weekday \(v)", "nL with n 0-7") }
            result.lastWeekdays |= 1 << UInt64(v % 7)
            return
        }
        if field == .dayOfWeek && item.contains("#") {
            let pieces = item.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
            let day = try value(pieces[0], in: item)
            guard let n = number(pieces[1]), n >= 1 && n <= 5 else {
                throw error(item, "has an invalid occurrence \"#\(pieces[1])\"", "D#n with n 1-5, e.g. MON#2")
            }
            result.nth |= 1 << UInt64((n - 1) * 7 + day % 7)
            return
        }
        if item.contains("/") {
            let pieces = item.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let step = number(pieces[1]) else {
                throw error(item, "has an invalid step \"\(pieces[1])\"", "a step that is a positive number, e.g. */15")
            }
            guard step > 0 else { throw error(item, "has step 0", "a step of at least 1, e.g. */15") }
            let base = pieces[0]
            var from = low
            var to = high
            if base == "*" {
                // whole range
            } else if base.contains("-") {
                (from, to) = try range(base, in: item)
            } else {
                if field == .dayOfMonth && (base == "L" || base == "LW") {
                    throw error(item, "steps from \(base)", "a step over a range or value, e.g. */2 or 1-15/2")
                }
                from = try value(base, in: item)
            }
            result.values |= mask(from, to, step)
            return
        }
        if item.contains("-") {
            let (from, to) = try range(item, in: item)
            result.values |= mask(from, to, 1)
            return
        }
        if field == .dayOfMonth && item == "L" {
            result.last = true
            return
        }
        if field == .dayOfMonth && item == "LW" {
            result.lastWeekday = true
            return
        }
        result.values |= 1 << UInt64(try value(item, in: item))
    }

    func range(_ s: Substring, in item: Substring) throws -> (Int, Int) {
        let pieces = s.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        let from = try value(pieces[0], in: item)
        let to = try value(pieces[1], in: item)
        guard from <= to else {
            throw error(item, "is a reversed range", "a range low-high with low <= high, e.g. \(to)-\(from)")
        }
        return (from, to)
    }

    func mask(_ from: Int, _ to: Int, _ step: Int) -> UInt64 {
        var m: UInt64 = 0
        var v = from
        while v <= to {
            m |= 1 << UInt64(v)
            v += step
        }
        return m
    }
}
