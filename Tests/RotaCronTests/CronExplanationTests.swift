import Foundation
import Testing
@testable import RotaCron

/// `CronExpression.explanation(timeZone:)`: the wording of every construct the parser accepts.
@Suite struct CronExplanationTests {
    /// Expression → sentence, one row per construct (and per shape of the time of day).
    static let table: [(String, String)] = [
        // The examples.
        ("0 9 * * MON-FRI", "at 09:00 on Monday through Friday"),
        ("*/15 9-17 * * *", "every 15 minutes from 09:00 to 17:45"),
        ("0 18 LW * *", "at 18:00 on the last weekday of the month"),
        // Minutes and hours.
        ("* * * * *", "every minute"),
        ("*/5 * * * *", "every 5 minutes"),
        ("0,30 * * * *", "every 30 minutes"),
        ("0-59/20 * * * *", "every 20 minutes"),
        ("0 * * * *", "every hour"),
        ("30 * * * *", "at 30 minutes past every hour"),
        ("1 * * * *", "at 1 minute past every hour"),
        ("5/15 * * * *", "at 5, 20, 35 and 50 minutes past every hour"),
        ("1/2 * * * *", "every 2 minutes from 00:01 to 23:59"),
        ("30 3 * * *", "at 03:30 every day"),
        ("0 9,17 * * *", "at 09:00 and 17:00 every day"),
        ("0 */6 * * *", "at 00:00, 06:00, 12:00 and 18:00 every day"),
        ("0 9-17/2 * * *", "at 09:00, 11:00, 13:00, 15:00 and 17:00 every day"),
        ("0 */2 * * *", "every 2 hours from 00:00 to 22:00"),
        ("0 0-23/3 * * *", "every 3 hours from 00:00 to 21:00"),
        ("30 9-17 * * *", "every hour from 09:30 to 17:30"),
        ("* 9-17 * * *", "every minute from 09:00 to 17:59"),
        ("*/15 9-11,14-17 * * *", "every 15 minutes from 09:00 to 11:45 and from 14:00 to 17:45"),
        ("0-10,30 9-17 * * *", "at minutes 0 through 10 and 30 of hours 9 through 17"),
        ("0 1,2,5,9,13,17,20 * * *", "at minute 0 of hours 1, 2, 5, 9, 13, 17 and 20"),
        ("*/7 9-17 * * *", "every 7th minute from 0 through 56 of hours 9 through 17"),
        ("*/5 1,3,5,7 * * *", "every 5 minutes of hours 1, 3, 5 and 7"),
        ("*/20 */2 * * *", "every 20 minutes of every 2nd hour from 0 through 22"),
        ("10,20,50 */2 * * *", "at minutes 10, 20 and 50 of every 2nd hour from 0 through 22"),
        // The seconds field.
        ("* * * * * *", "every second"),
        ("*/10 * * * * *", "every 10 seconds"),
        ("0 */5 * * * *", "every 5 minutes"),
        ("30 * * * * *", "every minute, at second 30"),
        ("15 30 9 * * *", "at 09:30:15 every day"),
        ("30 0,30 9 * * *", "at 09:00:30 and 09:30:30 every day"),
        ("*/10 * 9-17 * * *", "every 10 seconds from 09:00:00 to 17:59:50"),
        ("0,30 5 * * * *", "at seconds 0 and 30 of minute 5 of every hour"),
        ("*/2 5 * * * *", "every 2 seconds of minute 5 of every hour"),
        ("1/2 5 * * * *", "every 2nd second from 1 through 59 of minute 5 of every hour"),
        // Days of the month: values, ranges, steps, L, LW.
        ("0 0 1,15 * *", "at 00:00 on the 1st and 15th of the month"),
        ("0 0 1-7 * *", "at 00:00 on the 1st through 7th of the month"),
        ("0 0 1-5,10 * *", "at 00:00 on the 1st through 5th and 10th of the month"),
        ("0 0 */2 * *", "at 00:00 on every 2nd day from the 1st through the 31st of the month"),
        ("0 0 L * *", "at 00:00 on the last day of the month"),
        ("0 0 15,L * *", "at 00:00 on the 15th and the last day of the month"),
        ("0 0 22 * *", "at 00:00 on the 22nd of the month"),
        // Days of the week: names, numbers (0 and 7 are Sunday), ranges, steps, nL, #n.
        ("0 9 * * 1,3,5", "at 09:00 on Monday, Wednesday and Friday"),
        ("0 12 * * SAT,SUN", "at 12:00 on Saturday and Sunday"),
        ("0 12 * * 0", "at 12:00 on Sunday"),
        ("0 12 * * 7", "at 12:00 on Sunday"),
        ("0 12 * * 5-7", "at 12:00 on Friday through Sunday"),
        ("0 12 * * sun-tue", "at 12:00 on Monday, Tuesday and Sunday"),
        ("*/20 * * * 1-5", "every 20 minutes on Monday through Friday"),
        ("0 22 * * 5L", "at 22:00 on the last Friday of the month"),
        ("0 22 * * 0L", "at 22:00 on the last Sunday of the month"),
        ("0 8 * * MON#1", "at 08:00 on the first Monday of the month"),
        ("0 8 * * 2#3,FRI#5", "at 08:00 on the third Tuesday and the fifth Friday of the month"),
        ("0 0 * * MON,5L", "at 00:00 on Monday and on the last Friday of the month"),
        // Both day fields restricted: either matches ("or"); a field starting with * makes both needed.
        ("0 0 1 * MON", "at 00:00 on the 1st of the month or on Monday"),
        ("0 0 13 * FRI", "at 00:00 on the 13th of the month or on Friday"),
        ("0 0 L * 5L", "at 00:00 on the last day of the month or on the last Friday of the month"),
        ("0 0 LW * 1#2,3#2", "at 00:00 on the last weekday of the month or on the second Monday and the second Wednesday of the month"),
        ("0 0 1-31 * MON", "at 00:00 every day"),
        ("0 0 5 * 1-7", "at 00:00 every day"),
        ("0 0 */2 * MON", "at 00:00 on every 2nd day from the 1st through the 31st of the month, if it is also Monday"),
        ("0 0 1 * */2", "at 00:00 on the 1st of the month, if it is also Tuesday, Thursday, Saturday or Sunday"),
        // Months.
        ("0 0 1 */3 *", "at 00:00 on the 1st of the month in January, April, July and October"),
        ("0 0 * 6-8 *", "at 00:00 every day in June through August"),
        ("0 * * JAN *", "every hour in January"),
        ("0 0 1 1 *", "at 00:00 on the 1st of January"),
        ("0 0 29 FEB *", "at 00:00 on the 29th of February"),
        ("0 0 * 1 MON#1", "at 00:00 on the first Monday of January"),
        ("0 0 * 1 MON", "at 00:00 on Monday in January"),
        ("0 0 1 1 MON", "at 00:00 on the 1st of the month or on Monday, in January"),
        ("0 8 * JAN,APR,JUL,OCT MON#1", "at 08:00 on the first Monday of the month in January, April, July and October"),
        ("0 0 1 3,4 *", "at 00:00 on the 1st of the month in March and April"),
        // Macros read as what they stand for.
        ("@yearly", "at 00:00 on the 1st of January"),
        ("@annually", "at 00:00 on the 1st of January"),
        ("@monthly", "at 00:00 on the 1st of the month"),
        ("@weekly", "at 00:00 on Sunday"),
        ("@daily", "at 00:00 every day"),
        ("@midnight", "at 00:00 every day"),
        ("@hourly", "every hour"),
    ]

    @Test(arguments: table)
    func explainsEachConstruct(_ row: (String, String)) throws {
        #expect(try CronExpression(row.0).explanation() == row.1, "\(row.0)")
    }

    @Test func theTableHasARowPerConstruct() {
        #expect(Self.table.count >= 40)
    }

    @Test func theZoneIsAppendedWhenGiven() throws {
        #expect(try CronExpression("0 9 * * MON-FRI").explanation(timeZone: "Europe/Berlin")
            == "at 09:00 on Monday through Friday, Europe/Berlin")
        #expect(try CronExpression("*/15 9-17 * * *").explanation(timeZone: "UTC") == "every 15 minutes from 09:00 to 17:45, UTC")
    }

    @Test func theSpellingDoesNotChangeTheSentence() throws {
        // The sentence comes from the values, not the text.
        let spellings = ["*/15 * * * *", "0,15,30,45 * * * *", "0-59/15 * * * *", "0/15 * * * *"]
        #expect(Set(try spellings.map { try CronExpression($0).explanation() }) == ["every 15 minutes"])
        #expect(try CronExpression("0 9 * * mon-fri").explanation() == CronExpression("0 9 * * 1-5").explanation())
    }

    @Test func whatTheParserRejectsHasNoExplanation() {
        // `?` (Quartz) and `H` (Jenkins) are not cron: the parser refuses them, so nothing is explained.
        #expect(cronError("0 0 ? * *") != nil)
        #expect(cronError("H * * * *") != nil)
    }

    /// The natural time-of-day phrases say exactly when a day's fires are: for every row without a day or
    /// month restriction whose phrase is one of them, the times the sentence describes (read back from its
    /// words) are the times of the fires on 2026-01-01, no more and no fewer.
    @Test func naturalTimePhrasesAreExact() throws {
        var checked = 0
        for (expression, sentence) in Self.table {
            let time = sentence.hasSuffix(" every day") ? String(sentence.dropLast(" every day".count)) : sentence
            guard let described = Self.secondsOfDay(described: time) else { continue }
            let cron = try CronExpression(expression)
            let midnight = utc("2026-01-01T00:00:00Z")
            var actual = Set<Int>()
            var cursor = midnight.addingTimeInterval(-1)
            while let fire = cron.next(after: cursor, in: TimeZone(identifier: "UTC")!), fire < midnight.addingTimeInterval(86_400) {
                actual.insert(Int(fire.timeIntervalSince(midnight)))
                cursor = fire
            }
            #expect(actual == described, "\(expression): \"\(sentence)\" describes \(described.count) times, fires \(actual.count)")
            checked += 1
        }
        #expect(checked >= 25)
    }

    /// The seconds of the day a natural time phrase describes, or `nil` for any other phrase.
    static func secondsOfDay(described text: String) -> Set<Int>? {
        func clock(_ t: Substring) -> Int? {
            let parts = t.split(separator: ":").compactMap { Int($0) }
            guard parts.count >= 2, parts.count == t.split(separator: ":").count else { return nil }
            return parts[0] * 3600 + parts[1] * 60 + (parts.count == 3 ? parts[2] : 0)
        }
        var text = Substring(text)
        var second = 0
        if let range = text.range(of: ", at second ") {
            guard let s = Int(text[range.upperBound...]) else { return nil }
            second = s
            text = text[..<range.lowerBound]
        }
        let units = ["second": 1, "seconds": 1, "minute": 60, "minutes": 60, "hour": 3600, "hours": 3600]
        let words = text.split(separator: " ")
        if words.first == "every" {
            let (step, rest): (Int, ArraySlice<Substring>)
            if words.count >= 2, let unit = units[String(words[1])] {
                (step, rest) = (unit, words.dropFirst(2))
            } else if words.count >= 3, let n = Int(words[1]), let unit = units[String(words[2])] {
                (step, rest) = (n * unit, words.dropFirst(3))
            } else {
                return nil
            }
            if rest.isEmpty {
                // From midnight, all day.
                return Set(stride(from: 0, to: 86_400, by: step).map { $0 + second })
            }
            // "from A to B" pieces joined by "and".
            var result = Set<Int>()
            for piece in rest.split(separator: "and") {
                guard piece.count == 4, piece[piece.startIndex] == "from", piece[piece.startIndex + 2] == "to",
                      let from = clock(piece[piece.startIndex + 1]), let to = clock(piece[piece.startIndex + 3]) else { return nil }
                result.formUnion(stride(from: from, through: to, by: step))
            }
            return result
        }
        if words.first == "at", text.hasSuffix(" past every hour") {
            let list = text.dropFirst(3).dropLast(" past every hour".count)
            let minutes = list.replacingOccurrences(of: " and ", with: ", ").replacingOccurrences(of: " minutes", with: "")
                .replacingOccurrences(of: " minute", with: "").split(separator: ", ").compactMap { Int($0) }
            return Set((0..<24).flatMap { h in minutes.map { h * 3600 + $0 * 60 + second } })
        }
        if words.first == "at" {
            let list = text.dropFirst(3).replacingOccurrences(of: " and ", with: ", ").split(separator: ", ")
            let times = list.compactMap(clock)
            return times.count == list.count ? Set(times) : nil
        }
        return nil
    }

    /// Every sentence of the table names only the hours it fires at: each fire of the next two days falls
    /// on a clock time the sentence states or lies within a "from … to …" it states. A guard against a
    /// pretty phrase that is wrong, for the rows with fixed times.
    @Test func listedTimesAreFireTimes() throws {
        for (expression, sentence) in Self.table where sentence.hasPrefix("at ") && !sentence.contains(" of hours") && !sentence.contains(" of every")
            && !sentence.contains("past") && !sentence.contains(" of minute") {
            let cron = try CronExpression(expression)
            let fires = cron.fires(after: utc("2026-01-01T00:00:00Z"), in: TimeZone(identifier: "UTC")!, count: 2000)
            for fire in fires.prefix(50) {
                let time = String(iso(fire).dropFirst(11).prefix(cron.hasSeconds ? 8 : 5))
                let shown = cron.hasSeconds && time.hasSuffix(":00") && !sentence.contains(time) ? String(time.prefix(5)) : time
                #expect(sentence.contains(shown), "\(expression): fires at \(time), not in \"\(sentence)\"")
            }
        }
    }
}
