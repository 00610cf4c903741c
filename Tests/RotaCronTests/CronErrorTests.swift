import Foundation
import Testing
@testable import RotaCron

@Suite struct CronErrorTests {
    @Test(arguments: [
        ("", "empty"), ("* * * *", "4 fields"), ("* * * * * * *", "7 fields"), ("@every", "not a known macro"),
        ("@daily 1", "2 fields"),
    ])
    func wrongShape(text: String, fragment: String) throws {
        let error = try #require(cronError(text))
        #expect(error.field == nil)
        #expect(error.description.contains(fragment), "\(error)")
        #expect(error.description.contains("expected"))
    }

    @Test(arguments: [
        ("60 * * * *", CronError.Field.minute, "60"),
        ("* 24 * * *", .hour, "24"),
        ("* * 0 * *", .dayOfMonth, "0"),
        ("* * 32 * *", .dayOfMonth, "32"),
        ("* * * 0 *", .month, "0"),
        ("* * * 13 *", .month, "13"),
        ("* * * * 8", .dayOfWeek, "8"),
        ("60 * * * * *", .second, "60"),
        ("* * * * * 8", .dayOfWeek, "8"),
        ("1-60 * * * *", .minute, "1-60"),
    ])
    func outOfRange(text: String, field: CronError.Field, part: String) throws {
        let error = try #require(cronError(text))
        #expect(error.field == field)
        #expect(error.part == part)
        #expect(error.description.hasPrefix("\(field.rawValue) field"), "\(error)")
        #expect(error.description.contains("out of range"))
    }

    @Test func reversedRange() throws {
        let error = try #require(cronError("0 17-9 * * *"))
        #expect(error.field == .hour)
        #expect(error.part == "17-9")
        #expect(error.problem.contains("reversed"))
        #expect(try #require(cronError("0 0 * * FRI-MON")).field == .dayOfWeek)
        #expect(try #require(cronError("0 0 * DEC-JAN *")).field == .month)
    }

    @Test func stepZeroAndBadSteps() throws {
        for (text, field) in [("*/0 * * * *", CronError.Field.minute), ("0 0-12/0 * * *", .hour),
                              ("0 0 */x * *", .dayOfMonth), ("0 0 * */ *", .month), ("0/0 * * * * *", .second)] {
            let error = try #require(cronError(text), "\(text)")
            #expect(error.field == field, "\(text)")
            #expect(error.description.contains("step"), "\(error)")
        }
    }

    @Test func nthOutOfRange() throws {
        for text in ["0 0 * * MON#0", "0 0 * * 1#6", "0 0 * * 1#", "0 0 * * #2", "0 0 * * 9#1", "0 0 * * 1#1#2"] {
            let error = try #require(cronError(text), "\(text)")
            #expect(error.field == .dayOfWeek, "\(text)")
        }
        #expect(try #require(cronError("0 0 * * MON#0")).description.contains("1-5"))
    }

    @Test func lastForms() throws {
        #expect(try #require(cronError("0 0 * * L")).field == .dayOfWeek)
        #expect(try #require(cronError("0 0 * * FRIL")).field == .dayOfWeek)
        #expect(try #require(cronError("0 0 * * 8L")).field == .dayOfWeek)
        #expect(try #require(cronError("0 0 5L * *")).field == .dayOfMonth)
        #expect(try #require(cronError("0 0 L/2 * *")).field == .dayOfMonth)
        #expect(try #require(cronError("0 0 W * *")).field == .dayOfMonth)
        #expect(try #require(cronError("0 0 * L *")).field == .month)
    }

    @Test func impossibleDay() throws {
        let error = try #require(cronError("0 0 30 2 *"))
        #expect(error.field == .dayOfMonth)
        #expect(error.part == "30")
        #expect(error.description.contains("cannot occur"), "\(error)")
        #expect(try #require(cronError("0 0 31 4,6,9,11 *")).field == .dayOfMonth)
        #expect(try #require(cronError("0 0 31 APR *")).field == .dayOfMonth)
        // Possible somewhere, or combined with OR: accepted.
        #expect(cronError("0 0 31 4,5 *") == nil)
        #expect(cronError("0 0 29 2 *") == nil)
        #expect(cronError("0 0 30 2 MON") == nil)
        #expect(cronError("0 0 L 2 *") == nil)
    }

    @Test(arguments: [
        ("0 0 * * * ;", CronError.Field.dayOfWeek), ("a * * * *", .minute), ("0 0 1,,2 * *", .dayOfMonth),
        ("0 0 * * MONDAY", .dayOfWeek), ("0 0 * JANUARY *", .month), ("0 0 * * -1", .dayOfWeek),
        ("0 0 1-2-3 * *", .dayOfMonth), ("0 0 ? * *", .dayOfMonth), ("0 0 * * JAN", .dayOfWeek),
        ("0 0 * MON *", .month), ("0 1.5 * * *", .hour), ("0 0 * * 1,", .dayOfWeek), ("+5 * * * *", .minute),
        ("0 ０ * * *", .hour),
    ])
    func garbage(text: String, field: CronError.Field) throws {
        let error = try #require(cronError(text), "\(text)")
        #expect(error.field == field, "\(text): \(error)")
        #expect(error.description.contains(field.rawValue))
        #expect(error.description.contains("expected"))
    }

    @Test func partIsQuotedAsWritten() throws {
        let error = try #require(cronError("0 0 * * monday"))
        #expect(error.part == "monday")
        #expect(error.description == "day-of-week field: \"monday\" is not a valid value "
            + "(expected a number 0-7 (0 and 7 are Sunday) or SUN-SAT, nL or D#n)")
    }

    @Test func messageShape() throws {
        let error = try #require(cronError("0 0 32 * *"))
        #expect(error.description == "day-of-month field: \"32\" is out of range (expected 1-31)")
        #expect(error == CronError(field: .dayOfMonth, part: "32", problem: "is out of range", expected: "1-31"))
    }
}
