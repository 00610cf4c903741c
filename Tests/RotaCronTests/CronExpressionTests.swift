import Foundation
import Testing
@testable import RotaCron

@Suite struct CronExpressionTests {
    // MARK: Syntax forms

    @Test func everyMinute() throws {
        #expect(try fires("* * * * *", after: "2024-01-01T00:00:30Z", count: 3)
            == ["2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z", "2024-01-01T00:03:00Z"])
    }

    @Test func singleValues() throws {
        #expect(try fires("30 4 * * *", after: "2024-01-01T00:00:00Z", count: 2)
            == ["2024-01-01T04:30:00Z", "2024-01-02T04:30:00Z"])
        #expect(try fires("0 12 15 6 *", after: "2024-01-01T00:00:00Z", count: 2)
            == ["2024-06-15T12:00:00Z", "2025-06-15T12:00:00Z"])
    }

    @Test func rangesAndLists() throws {
        #expect(try fires("0 9-11 * * *", after: "2024-01-01T00:00:00Z", count: 4)
            == ["2024-01-01T09:00:00Z", "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z", "2024-01-02T09:00:00Z"])
        #expect(try fires("5,10,50 0 * * *", after: "2024-01-01T00:00:00Z", count: 4)
            == ["2024-01-01T00:05:00Z", "2024-01-01T00:10:00Z", "2024-01-01T00:50:00Z", "2024-01-02T00:05:00Z"])
        #expect(try fires("0 0 1-2,20 * *", after: "2024-01-01T00:00:00Z", count: 4)
            == ["2024-01-02T00:00:00Z", "2024-01-20T00:00:00Z", "2024-02-01T00:00:00Z", "2024-02-02T00:00:00Z"])
    }

    @Test func steps() throws {
        // */n
        #expect(try fires("*/20 * * * *", after: "2024-01-01T00:00:00Z", count: 4)
            == ["2024-01-01T00:20:00Z", "2024-01-01T00:40:00Z", "2024-01-01T01:00:00Z", "2024-01-01T01:20:00Z"])
        // a-b/n
        #expect(try fires("0 8-17/4 * * *", after: "2024-01-01T00:00:00Z", count: 4)
            == ["2024-01-01T08:00:00Z", "2024-01-01T12:00:00Z", "2024-01-01T16:00:00Z", "2024-01-02T08:00:00Z"])
        // a/n means a-max/n
        #expect(try fires("50/5 0 * * *", after: "2024-01-01T00:00:00Z", count: 3)
            == ["2024-01-01T00:50:00Z", "2024-01-01T00:55:00Z", "2024-01-02T00:50:00Z"])
        // a-a/n is just a
        #expect(try fires("5-5/2 0 * * *", after: "2024-01-01T00:00:00Z", count: 2)
            == ["2024-01-01T00:05:00Z", "2024-01-02T00:05:00Z"])
        // steps inside lists, and names in stepped ranges
        #expect(try fires("0 0 1 JAN-DEC/4 *", after: "2024-01-01T00:00:00Z", count: 3)
            == ["2024-05-01T00:00:00Z", "2024-09-01T00:00:00Z", "2025-01-01T00:00:00Z"])
        #expect(try fires("0 0 * * MON-FRI/2,SUN", after: "2024-01-01T00:00:00Z", count: 4)
            == ["2024-01-03T00:00:00Z", "2024-01-05T00:00:00Z", "2024-01-07T00:00:00Z", "2024-01-08T00:00:00Z"])
        // step over days and months
        #expect(try fires("0 0 */10 */6 *", after: "2024-01-01T00:00:00Z", count: 5)
            == ["2024-01-11T00:00:00Z", "2024-01-21T00:00:00Z", "2024-01-31T00:00:00Z",
                "2024-07-01T00:00:00Z", "2024-07-11T00:00:00Z"])
        // a step larger than the range leaves only its start
        #expect(try fires("*/45 0 * * *", after: "2024-01-01T00:00:00Z", count: 3)
            == ["2024-01-01T00:45:00Z", "2024-01-02T00:00:00Z", "2024-01-02T00:45:00Z"])
    }

    @Test func monthAndWeekdayNamesAnyCase() throws {
        let a = try fires("0 0 1 jan,Jul *", after: "2024-01-01T00:00:00Z", count: 2)
        #expect(a == ["2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z"])
        #expect(try fires("0 0 1 FEB-APR *", after: "2024-01-01T00:00:00Z", count: 4)
            == ["2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z", "2025-02-01T00:00:00Z"])
        // 2024-01-01 is a Monday.
        #expect(try fires("0 0 * * mon-WED", after: "2024-01-01T00:00:00Z", count: 3)
            == ["2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z", "2024-01-08T00:00:00Z"])
        #expect(try fires("0 0 * * Sat,sun", after: "2024-01-01T00:00:00Z", count: 2)
            == ["2024-01-06T00:00:00Z", "2024-01-07T00:00:00Z"])
    }

    @Test func zeroAndSevenAreSunday() throws {
        let zero = try fires("0 0 * * 0", after: "2024-01-01T00:00:00Z", count: 3)
        let seven = try fires("0 0 * * 7", after: "2024-01-01T00:00:00Z", count: 3)
        #expect(zero == ["2024-01-07T00:00:00Z", "2024-01-14T00:00:00Z", "2024-01-21T00:00:00Z"])
        #expect(seven == zero)
        #expect(try fires("0 0 * * 5-7", after: "2024-01-01T00:00:00Z", count: 4)
            == ["2024-01-05T00:00:00Z", "2024-01-06T00:00:00Z", "2024-01-07T00:00:00Z", "2024-01-12T00:00:00Z"])
    }

    @Test func lastDayOfMonth() throws {
        #expect(try fires("0 0 L * *", after: "2024-01-01T00:00:00Z", count: 4)
            == ["2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z", "2024-04-30T00:00:00Z"])
        #expect(try fires("0 0 L 2 *", after: "2025-01-01T00:00:00Z", count: 2)
            == ["2025-02-28T00:00:00Z", "2026-02-28T00:00:00Z"])
        #expect(try fires("0 0 15,L * *", after: "2024-02-01T00:00:00Z", count: 3)
            == ["2024-02-15T00:00:00Z", "2024-02-29T00:00:00Z", "2024-03-15T00:00:00Z"])
    }

    @Test func lastWeekdayOfMonth() throws {
        // 2024-03-31 is a Sunday → Fri 29th; 2024-08-31 is a Saturday → Fri 30th; 2024-07-31 is a Wednesday.
        #expect(try fires("0 0 LW * *", after: "2024-03-01T00:00:00Z", count: 6)
            == ["2024-03-29T00:00:00Z", "2024-04-30T00:00:00Z", "2024-05-31T00:00:00Z",
                "2024-06-28T00:00:00Z", "2024-07-31T00:00:00Z", "2024-08-30T00:00:00Z"])
    }

    @Test func lastGivenWeekdayOfMonth() throws {
        // 5L = the last Friday.
        #expect(try fires("0 0 * * 5L", after: "2024-01-01T00:00:00Z", count: 3)
            == ["2024-01-26T00:00:00Z", "2024-02-23T00:00:00Z", "2024-03-29T00:00:00Z"])
        // 7L and 0L are both the last Sunday.
        #expect(try fires("0 0 * * 7L", after: "2024-01-01T00:00:00Z", count: 2)
            == ["2024-01-28T00:00:00Z", "2024-02-25T00:00:00Z"])
        #expect(try fires("0 0 * * 0L", after: "2024-01-01T00:00:00Z", count: 2)
            == ["2024-01-28T00:00:00Z", "2024-02-25T00:00:00Z"])
    }

    @Test func nthWeekdayOfMonth() throws {
        // The second Tuesday (Patch Tuesday).
        #expect(try fires("0 18 * * TUE#2", after: "2024-01-01T00:00:00Z", count: 3)
            == ["2024-01-09T18:00:00Z", "2024-02-13T18:00:00Z", "2024-03-12T18:00:00Z"])
        // The fifth Friday exists only in some months.
        #expect(try fires("0 0 * * 5#5", after: "2024-01-01T00:00:00Z", count: 3)
            == ["2024-03-29T00:00:00Z", "2024-05-31T00:00:00Z", "2024-08-30T00:00:00Z"])
        #expect(try fires("0 0 * * 1#1,5L", after: "2024-01-01T00:00:00Z", count: 4)
            == ["2024-01-26T00:00:00Z", "2024-02-05T00:00:00Z", "2024-02-23T00:00:00Z", "2024-03-04T00:00:00Z"])
    }

    @Test func macros() throws {
        let start = "2024-05-15T10:20:00Z"
        #expect(try fires("@yearly", after: start, count: 1) == ["2025-01-01T00:00:00Z"])
        #expect(try fires("@annually", after: start, count: 1) == ["2025-01-01T00:00:00Z"])
        #expect(try fires("@monthly", after: start, count: 1) == ["2024-06-01T00:00:00Z"])
        #expect(try fires("@weekly", after: start, count: 1) == ["2024-05-19T00:00:00Z"])
        #expect(try fires("@daily", after: start, count: 1) == ["2024-05-16T00:00:00Z"])
        #expect(try fires("@midnight", after: start, count: 1) == ["2024-05-16T00:00:00Z"])
        #expect(try fires("@hourly", after: start, count: 2) == ["2024-05-15T11:00:00Z", "2024-05-15T12:00:00Z"])
        #expect(try fires("@DAILY", after: start, count: 1) == ["2024-05-16T00:00:00Z"])
        #expect(try CronExpression("@daily").hasSeconds == false)
    }

    @Test func sixFieldsWithSeconds() throws {
        let expr = try CronExpression("*/15 * * * * *")
        #expect(expr.hasSeconds)
        #expect(try fires("*/15 * * * * *", after: "2024-01-01T00:00:00Z", count: 5)
            == ["2024-01-01T00:00:15Z", "2024-01-01T00:00:30Z", "2024-01-01T00:00:45Z",
                "2024-01-01T00:01:00Z", "2024-01-01T00:01:15Z"])
        #expect(try fires("30 0 12 * * *", after: "2024-01-01T00:00:00Z", count: 2)
            == ["2024-01-01T12:00:30Z", "2024-01-02T12:00:30Z"])
        #expect(try CronExpression("0 12 * * *").hasSeconds == false)
    }

    @Test func whitespaceAndText() throws {
        let expr = try CronExpression("  0\t12  * * *  ")
        #expect(expr.text == "  0\t12  * * *  ")
        #expect(expr.description == expr.text)
        #expect(expr.next(after: utc("2024-01-01T00:00:00Z"), in: TimeZone(identifier: "UTC")!) == utc("2024-01-01T12:00:00Z"))
        #expect(try CronExpression("0 0 * * *") == CronExpression("0 0 * * *"))
        #expect(try CronExpression("0 0 * * *") != CronExpression("0 1 * * *"))
    }

    // MARK: Day-field OR/AND rule

    @Test func dayFieldsCombineWithOrWhenBothRestricted() throws {
        // The 13th OR any Friday. 2024-09-06 is a Friday.
        #expect(try fires("0 0 13 * FRI", after: "2024-09-01T00:00:00Z", count: 4)
            == ["2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z", "2024-09-20T00:00:00Z", "2024-09-27T00:00:00Z"])
        // The 1st or 15th OR any Monday (2024-01-01, a Monday, is the start and is excluded).
        #expect(try fires("0 0 1,15 * MON", after: "2024-01-01T00:00:00Z", count: 5)
            == ["2024-01-08T00:00:00Z", "2024-01-15T00:00:00Z", "2024-01-22T00:00:00Z", "2024-01-29T00:00:00Z",
                "2024-02-01T00:00:00Z"])
    }

    @Test func dayFieldsCombineWithAndWhenEitherStartsWithStar() throws {
        // Odd days (*/2 starts with '*') AND Fridays.
        #expect(try fires("0 0 */2 * FRI", after: "2024-01-01T00:00:00Z", count: 3)
            == ["2024-01-05T00:00:00Z", "2024-01-19T00:00:00Z", "2024-02-09T00:00:00Z"])
        // The 13th AND a weekday from a '*' step (*/7 = 0,7 = Sunday).
        #expect(try fires("0 0 13 * */7", after: "2024-01-01T00:00:00Z", count: 2)
            == ["2024-10-13T00:00:00Z", "2025-04-13T00:00:00Z"])
        // A plain '*' day-of-week: only the day of month matters.
        #expect(try fires("0 0 13 * *", after: "2024-01-01T00:00:00Z", count: 2)
            == ["2024-01-13T00:00:00Z", "2024-02-13T00:00:00Z"])
    }

    // MARK: Leap years and the 50-year end

    @Test func leapYears() throws {
        #expect(try fires("0 0 29 2 *", after: "2023-01-01T00:00:00Z", count: 3)
            == ["2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"])
        // 2100 is not a leap year, 2000 was.
        #expect(try fires("0 0 29 2 *", after: "2096-03-01T00:00:00Z", count: 1) == ["2104-02-29T00:00:00Z"])
        #expect(try fires("0 0 29 2 *", after: "1999-01-01T00:00:00Z", count: 1) == ["2000-02-29T00:00:00Z"])
        #expect(try fires("0 0 L 2 *", after: "2099-12-31T00:00:00Z", count: 2)
            == ["2100-02-28T00:00:00Z", "2101-02-28T00:00:00Z"])
    }

    @Test func nothingWithinFiftyYearsEndsTheSequence() throws {
        // Day 1 or 30 of February that is also its fifth Monday: never.
        let never = try CronExpression("0 0 */29 2 MON#5")
        let utcZone = TimeZone(identifier: "UTC")!
        #expect(never.next(after: utc("2024-01-01T00:00:00Z"), in: utcZone) == nil)
        #expect(never.fires(after: utc("2024-01-01T00:00:00Z"), in: utcZone, count: 3).isEmpty)
        #expect(never.next(after: utc("2024-01-01T00:00:00Z"), in: TimeZone(identifier: "America/New_York")!) == nil)
        // Rare but real: Feb 29 on a Sunday (AND, since */7 starts with '*').
        #expect(try fires("0 0 29 2 */7", after: "2024-01-01T00:00:00Z", count: 2)
            == ["2032-02-29T00:00:00Z", "2060-02-29T00:00:00Z"])
    }

    // MARK: Instants

    @Test func strictlyAfter() throws {
        let expr = try CronExpression("0 * * * *")
        let zone = TimeZone(identifier: "UTC")!
        #expect(expr.next(after: utc("2024-01-01T05:00:00Z"), in: zone) == utc("2024-01-01T06:00:00Z"))
        #expect(expr.next(after: utc("2024-01-01T04:59:59Z"), in: zone) == utc("2024-01-01T05:00:00Z"))
        #expect(expr.next(after: utc("2024-01-01T04:59:59Z").addingTimeInterval(0.999), in: zone) == utc("2024-01-01T05:00:00Z"))
        #expect(expr.next(after: utc("2024-01-01T05:00:00Z").addingTimeInterval(0.001), in: zone) == utc("2024-01-01T06:00:00Z"))
        #expect(expr.next(after: utc("2024-01-01T05:00:00Z").addingTimeInterval(-0.25), in: zone) == utc("2024-01-01T05:00:00Z"))
        let sec = try CronExpression("* * * * * *")
        #expect(sec.next(after: utc("2024-01-01T05:00:00Z").addingTimeInterval(0.5), in: zone) == utc("2024-01-01T05:00:01Z"))
    }

    @Test func previousFire() throws {
        let zone = TimeZone(identifier: "Europe/Berlin")!
        let expr = try CronExpression("0 3 * * *")
        // 03:00 Berlin (CET, +1) = 02:00Z.
        #expect(expr.previous(before: utc("2024-01-10T02:00:00Z"), in: zone) == utc("2024-01-09T02:00:00Z"))
        #expect(expr.previous(before: utc("2024-01-10T02:00:01Z"), in: zone) == utc("2024-01-10T02:00:00Z"))
        #expect(try CronExpression("0 0 */29 2 MON#5").previous(before: utc("2024-01-01T00:00:00Z"), in: zone) == nil)
        let secs = try CronExpression("*/7 * * * * *")
        #expect(secs.previous(before: utc("2024-01-10T02:00:00Z"), in: zone) == utc("2024-01-10T01:59:56Z"))
    }

    @Test func manyZonesAgreeWithUTCWhenNoDST() throws {
        // Asia/Kolkata has no DST: a fixed-time job is always 5h30 earlier in UTC.
        #expect(try fires("0 9 * * *", "Asia/Kolkata", after: "2024-01-01T00:00:00Z", count: 2)
            == ["2024-01-01T03:30:00Z", "2024-01-02T03:30:00Z"])
        #expect(try fires("0 9 * * *", "Asia/Kathmandu", after: "2024-01-01T00:00:00Z", count: 1)
            == ["2024-01-01T03:15:00Z"])
    }

    // MARK: Many fires

    @Test func tenThousandFiresMatchAMinuteByMinuteSearch() throws {
        // The fast search (next set bit per field, day by day) against the obvious one: every minute, tested
        // by its wall-clock fields in the zone. No time is asserted: speed is `rota bench`'s business.
        let expr = try CronExpression("*/5 9-17 * * MON-FRI")
        let zone = TimeZone(identifier: "America/New_York")!
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        func matches(_ date: Date) -> Bool {
            let c = calendar.dateComponents([.minute, .hour, .weekday, .second], from: date)
            return c.second == 0 && c.minute! % 5 == 0 && (9...17).contains(c.hour!) && (2...6).contains(c.weekday!)
        }
        let start = utc("2024-01-01T00:00:00Z")
        let result = expr.fires(after: start, in: zone, count: 10_000)
        #expect(result.count == 10_000)
        #expect(zip(result, result.dropFirst()).allSatisfy { $0 < $1 })
        let stray = result.first { !matches($0) }
        #expect(stray == nil, "\(stray.map(iso) ?? "") does not match the expression")
        // All 10,000 (about 19 weeks, across the March DST change) are exactly the matching minutes.
        var expected: [Date] = []
        var minute = start.addingTimeInterval(60)
        while expected.count < 10_000 {
            if matches(minute) { expected.append(minute) }
            minute = minute.addingTimeInterval(60)
        }
        let differ = expected.indices.first { result[$0] != expected[$0] }
        #expect(differ == nil, "fire \(differ ?? 0): \(iso(result[differ ?? 0])), expected \(iso(expected[differ ?? 0]))")
    }
}
