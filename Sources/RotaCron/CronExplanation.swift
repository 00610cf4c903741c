/// Cron expressions in words: ``CronExpression/explanation(timeZone:)``.
///
/// The sentence is built from the sets of values the parser computed (not from the text), so whatever the
/// spelling (`*/15`, `0,15,30,45`, `0-59/15`) it says what fires. Common shapes get a natural phrase
/// ("every 15 minutes from 09:00 to 17:45"); anything else gets a literal one that names every field's
/// values ("at minutes 0 through 10 and 30 of hours 9 through 17"), never a pretty one that is wrong.
extension CronExpression {
    /// The expression in words, e.g. `at 09:00 on Monday through Friday, Europe/Berlin` for `0 9 * * MON-FRI`.
    ///
    /// It covers every construct the parser accepts: seconds, steps, ranges, lists, names, `L`, `LW`, `nL`,
    /// `D#n` and the macros (which read as what they stand for: `@daily` is `at 00:00 every day`). When both
    /// day fields are restricted, cron fires on a day that matches *either*, and the sentence says "or"
    /// (`0 0 1 * MON`: `at 00:00 on the 1st of the month or on Monday`). Times are wall-clock times of the
    /// zone; the daylight-saving rules of ``CronExpression`` apply and are not repeated.
    ///
    /// ```swift
    /// try CronExpression("*/15 9-17 * * *").explanation()   // "every 15 minutes from 09:00 to 17:45"
    /// try CronExpression("0 18 LW * *").explanation(timeZone: "Europe/Berlin")
    /// // "at 18:00 on the last weekday of the month, Europe/Berlin"
    /// ```
    /// - Parameter timeZone: The zone the expression is read in, appended as `, ZONE`; `nil` leaves it out.
    /// - Returns: One sentence, in lower case, without a final full stop.
    public func explanation(timeZone: String? = nil) -> String {
        let explainer = CronExplainer(
            seconds: CronExplainer.values(seconds, 0, 59), minutes: CronExplainer.values(minutes, 0, 59),
            hours: CronExplainer.values(hours, 0, 23), monthDays: CronExplainer.values(monthDays, 1, 31),
            lastDay: lastDay, lastWeekday: lastWeekday, months: CronExplainer.values(months, 1, 12),
            weekdays: CronExplainer.values(weekdays, 0, 6), lastWeekdays: CronExplainer.values(lastWeekdays, 0, 6),
            nthWeekdays: (0..<35).filter { nthWeekdays & (1 << UInt64($0)) != 0 }.map { (weekday: $0 % 7, nth: $0 / 7 + 1) },
            daysCombineWithAnd: daysCombineWithAnd)
        let sentence = explainer.sentence()
        guard let timeZone else { return sentence }
        return sentence + ", " + timeZone
    }
}

/// Builds the sentence of ``CronExpression/explanation(timeZone:)`` from the expression's value sets.
struct CronExplainer {
    var seconds: [Int]
    var minutes: [Int]
    var hours: [Int]
    var monthDays: [Int]
    var lastDay: Bool
    var lastWeekday: Bool
    var months: [Int]
    var weekdays: [Int]
    var lastWeekdays: [Int]
    var nthWeekdays: [(weekday: Int, nth: Int)]
    var daysCombineWithAnd: Bool

    /// The values `low...high` whose bit is set in `mask`, in increasing order.
    static func values(_ mask: UInt64, _ low: Int, _ high: Int) -> [Int] {
        (low...high).filter { mask & (1 << UInt64($0)) != 0 }
    }

    static let monthNames = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                             "October", "November", "December"]
    static let dayNames = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    static let occurrences = ["first", "second", "third", "fourth", "fifth"]

    /// The whole sentence: time, days, months.
    func sentence() -> String {
        let time = timePhrase()
        var text = time
        var monthNamed = false
        if let (days, namesMonth) = dayPhrase() {
            text += " " + days
            monthNamed = namesMonth
        } else if time.hasPrefix("at ") && !time.contains(" of ") && !time.contains(" past ") {
            // "at 09:00" alone does not say how often: every day.
            text += " every day"
        }
        if months.count < 12 && !monthNamed {
            // After "… or on …" a comma says the months restrict both.
            text += (text.contains(" or on ") ? ", in " : " in ") + Self.list(Self.runs(months).flatMap { run in
                run.count >= 3 ? [Self.monthNames[run[0] - 1] + " through " + Self.monthNames[run[run.count - 1] - 1]]
                    : run.map { Self.monthNames[$0 - 1] }
            })
        }
        return text
    }

    // MARK: Time of day

    private var secondsShown: Bool { seconds != [0] }

    /// `HH:MM`, or `HH:MM:SS` when the expression fires at a second other than 0.
    private func clock(_ hour: Int, _ minute: Int, _ second: Int? = nil) -> String {
        let base = Self.two(hour) + ":" + Self.two(minute)
        if let second { return base + ":" + Self.two(second) }
        return secondsShown ? base + ":" + Self.two(seconds[0]) : base
    }

    /// The time-of-day part: a natural phrase for the common shapes, the literal one otherwise.
    func timePhrase() -> String {
        let fullMinutes = minutes.count == 60, fullHours = hours.count == 24
        // Several seconds a minute (the 6-field form): every (n) seconds when the spacing is even throughout.
        if seconds.count > 1 {
            if fullMinutes, let (step, first) = Self.uniformStep(seconds, 60) {
                let unit = step == 1 ? "every second" : "every \(step) seconds"
                if fullHours && first == 0 { return unit }
                if let ranges = hourRanges() {
                    let last = seconds[seconds.count - 1]
                    return unit + " " + ranges.map { "from " + clock($0[0], 0, first) + " to " + clock($0[$0.count - 1], 59, last) }
                        .joined(separator: " and ")
                }
            }
            return literalTime()
        }
        // One second (0 in the 5-field form) in each matching minute from here on.
        let atSecond = secondsShown ? ", at second \(seconds[0])" : ""
        if minutes.count * hours.count <= 6 {
            return "at " + Self.list(hours.flatMap { h in minutes.map { m in clock(h, m) } })
        }
        if minutes.count == 1 {
            let minute = minutes[0]
            if fullHours {
                return minute == 0 ? "every hour" + atSecond
                    : "at \(minute) minute\(minute == 1 ? "" : "s") past every hour" + atSecond
            }
            if let (step, first) = Self.arithmetic(hours) {
                let unit = step == 1 ? "every hour" : "every \(step) hours"
                return unit + " from " + clock(first, minute) + " to " + clock(hours[hours.count - 1], minute)
            }
            return literalTime()
        }
        let uniform = Self.uniformStep(minutes, 60)
        if fullHours && minutes.count <= 6 && !(uniform.map { $0.1 == 0 } ?? false) {
            return "at " + Self.list(minutes.map(String.init)) + " minutes past every hour" + atSecond
        }
        if let (step, first) = uniform {
            let unit = step == 1 ? "every minute" : "every \(step) minutes"
            if fullHours && first == 0 { return unit + atSecond }
            if let ranges = hourRanges() {
                let last = minutes[minutes.count - 1]
                return unit + " " + ranges.map { "from " + clock($0[0], first) + " to " + clock($0[$0.count - 1], last) }
                    .joined(separator: " and ")
            }
        }
        return literalTime()
    }

    /// The hours as at most 3 runs of consecutive hours (00–23 is one run), or `nil` when they are more.
    private func hourRanges() -> [[Int]]? {
        let runs = Self.runs(hours)
        return runs.count <= 3 ? runs : nil
    }

    /// Every field's values, named: `at minutes 0 through 10 and 30 of hours 9 through 17`.
    private func literalTime() -> String {
        var clauses: [String] = []
        let fullSeconds = seconds.count == 60, fullMinutes = minutes.count == 60
        if secondsShown {
            clauses.append(fullSeconds ? "every second" : Self.field(seconds, "second", "seconds", period: 60))
        }
        if !(fullSeconds && fullMinutes) {
            clauses.append(fullMinutes ? "every minute" : Self.field(minutes, "minute", "minutes", period: 60))
        }
        clauses.append(hours.count == 24 ? "every hour" : Self.field(hours, "hour", "hours"))
        let text = clauses.joined(separator: " of ")
        return text.hasPrefix("every ") ? text : "at " + text
    }

    /// `minute 5`, `minutes 0, 15 and 30`, `minutes 0 through 10`, `every 5 minutes` (every 5th of the
    /// `period` from 0), `every 2nd minute from 1 through 59`.
    static func field(_ values: [Int], _ one: String, _ many: String, period: Int? = nil) -> String {
        if values.count == 1 { return "\(one) \(values[0])" }
        if let period, values.count > 2, let (step, first) = uniformStep(values, period), first == 0 {
            return "every \(step) \(many)"
        }
        if values.count >= 5, let (step, first) = arithmetic(values), step > 1 {
            return "every \(ordinal(step)) \(one) from \(first) through \(values[values.count - 1])"
        }
        return many + " " + numberList(values)
    }

    // MARK: Days

    /// The day part (`on Monday through Friday`, `on the last day of the month or on Friday`) and whether it
    /// names the one month the expression runs in; `nil` when every day matches.
    func dayPhrase() -> (String, Bool)? {
        let domEvery = monthDays.count == 31
        let dowEvery = weekdays.count == 7
        // The single month replaces "the month" only where it restricts the phrase's only days.
        let month = months.count == 1 ? Self.monthNames[months[0] - 1] : nil
        if daysCombineWithAnd {
            switch (domEvery, dowEvery) {
            case (true, true): return nil
            case (false, true): return ("on " + monthDayPhrase(month: month), month != nil)
            case (true, false):
                let plain = weekdays.isEmpty
                return ("on " + weekdayPhrase(month: plain ? month : nil, or: false), plain && month != nil)
            case (false, false):
                return ("on " + monthDayPhrase(month: nil) + ", if it is also " + weekdayPhrase(month: nil, or: true), false)
            }
        }
        // Either field may match: one that matches every day makes every day match.
        if domEvery || dowEvery { return nil }
        return ("on " + monthDayPhrase(month: nil) + " or on " + weekdayPhrase(month: nil, or: false), false)
    }

    /// The days of the month: `the 1st and 15th of the month`, `the last weekday of the month`.
    private func monthDayPhrase(month: String?) -> String {
        var parts: [String] = []
        if !monthDays.isEmpty {
            if monthDays.count >= 5, let (step, first) = Self.arithmetic(monthDays), step > 1 {
                parts.append("every \(Self.ordinal(step)) day from the \(Self.ordinal(first)) through the "
                    + Self.ordinal(monthDays[monthDays.count - 1]))
            } else {
                parts.append("the " + Self.list(Self.runs(monthDays).flatMap { run in
                    run.count >= 3 ? [Self.ordinal(run[0]) + " through " + Self.ordinal(run[run.count - 1])] : run.map(Self.ordinal)
                }))
            }
        }
        if lastDay { parts.append("the last day") }
        if lastWeekday { parts.append("the last weekday") }
        return Self.list(parts) + " of " + (month ?? "the month")
    }

    /// The days of the week: `Monday through Friday`, `the last Friday of the month`, `the first Monday of
    /// the month`; joined with "or" (for "if it is also …") or "and".
    private func weekdayPhrase(month: String?, or: Bool) -> String {
        let conjunction = or ? "or" : "and"
        var parts: [String] = []
        if !weekdays.isEmpty {
            // The week reads Monday to Sunday.
            let mondayFirst = weekdays.map { $0 == 0 ? 7 : $0 }.sorted()
            parts.append(Self.list(Self.runs(mondayFirst).flatMap { run in
                run.count >= 3 ? [Self.dayNames[run[0] % 7] + " through " + Self.dayNames[run[run.count - 1] % 7]]
                    : run.map { Self.dayNames[$0 % 7] }
            }, conjunction))
        }
        var ofMonth: [String] = []
        for day in lastWeekdays.map({ $0 == 0 ? 7 : $0 }).sorted() { ofMonth.append("the last " + Self.dayNames[day % 7]) }
        for (weekday, nth) in nthWeekdays.sorted(by: { ($0.nth, ($0.weekday + 6) % 7) < ($1.nth, ($1.weekday + 6) % 7) }) {
            ofMonth.append("the " + Self.occurrences[nth - 1] + " " + Self.dayNames[weekday])
        }
        if !ofMonth.isEmpty { parts.append(Self.list(ofMonth, conjunction) + " of " + (month ?? "the month")) }
        return parts.joined(separator: or ? " or " : " and on ")
    }

    // MARK: Words and numbers

    /// `a`, `a and b`, `a, b and c`.
    static func list(_ items: [String], _ conjunction: String = "and") -> String {
        switch items.count {
        case 0: return ""
        case 1: return items[0]
        default: return items.dropLast().joined(separator: ", ") + " " + conjunction + " " + items[items.count - 1]
        }
    }

    /// Numbers with runs of 3 or more as `a through b`: `0 through 10 and 30`.
    static func numberList(_ values: [Int]) -> String {
        list(runs(values).flatMap { run in
            run.count >= 3 ? ["\(run[0]) through \(run[run.count - 1])"] : run.map(String.init)
        })
    }

    /// Sorted values split into runs of consecutive ones.
    static func runs(_ values: [Int]) -> [[Int]] {
        var result: [[Int]] = []
        for value in values {
            if let last = result.last?.last, last + 1 == value {
                result[result.count - 1].append(value)
            } else {
                result.append([value])
            }
        }
        return result
    }

    /// `(step, first)` when the sorted values are evenly spaced (two or more values), else `nil`.
    static func arithmetic(_ values: [Int]) -> (Int, Int)? {
        guard values.count >= 2 else { return nil }
        let step = values[1] - values[0]
        for i in 1..<values.count where values[i] - values[i - 1] != step { return nil }
        return (step, values[0])
    }

    /// `(step, first)` when the values are every `step`-th of `0..<period` from `first` (`step` divides
    /// `period`): they keep the same spacing across the end of the period, so "every `step`" is exact.
    static func uniformStep(_ values: [Int], _ period: Int) -> (Int, Int)? {
        guard let (step, first) = arithmetic(values), period % step == 0, first < step,
              values.count == period / step else { return nil }
        return (step, first)
    }

    /// `1st`, `2nd`, `3rd`, `4th`, `11th`, `21st`.
    static func ordinal(_ n: Int) -> String {
        let suffix: String
        switch (n % 10, n % 100) {
        case (_, 11...13): suffix = "th"
        case (1, _): suffix = "st"
        case (2, _): suffix = "nd"
        case (3, _): suffix = "rd"
        default: suffix = "th"
        }
        return "\(n)\(suffix)"
    }

    static func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
}
