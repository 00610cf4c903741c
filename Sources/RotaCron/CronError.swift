/// Why a cron expression was rejected: the field, the offending part, and what was expected there.
///
/// The ``description`` reads like `day-of-month: "32" is out of range (expected 1-31, L or LW)`.
public struct CronError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A field of a cron expression.
    public enum Field: String, Sendable, Equatable, CaseIterable {
        /// The optional leading seconds field of the 6-field form.
        case second
        /// The minute field.
        case minute
        /// The hour field.
        case hour
        /// The day-of-month field.
        case dayOfMonth = "day-of-month"
        /// The month field.
        case month
        /// The day-of-week field.
        case dayOfWeek = "day-of-week"
    }

    /// The field that holds the mistake, or `nil` when the expression as a whole is wrong
    /// (for example the wrong number of fields).
    public let field: Field?
    /// The part of the expression that is wrong, as written (a list item, a range, a value, or the whole text).
    public let part: String
    /// What is wrong with ``part``.
    public let problem: String
    /// What would have been accepted instead.
    public let expected: String

    /// Creates an error.
    /// - Parameters:
    ///   - field: The field at fault, or `nil` for the whole expression.
    ///   - part: The offending text.
    ///   - problem: What is wrong with it.
    ///   - expected: What was expected instead.
    public init(field: Field?, part: String, problem: String, expected: String) {
        self.field = field
        self.part = part
        self.problem = problem
        self.expected = expected
    }

    /// A one-line message: the field, the quoted part, the problem and what was expected.
    public var description: String {
        let subject = field.map { "\($0.rawValue) field" } ?? "cron expression"
        return "\(subject): \"\(part)\" \(problem) (expected \(expected))"
    }
}
