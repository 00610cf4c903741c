/// An error from Rota's API and store, with a code to match on and a message a person can act on.
///
/// Codes are static members so new ones can be added without breaking callers:
/// ```swift
/// catch let error as RotaError where error.code == .invalidInput { print(error.field ?? "") }
/// ```
public struct RotaError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A kind of error.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let raw: String
        private init(_ raw: String) { self.raw = raw }

        /// A value given by the caller is wrong (see ``RotaError/field``). Nothing was written.
        public static let invalidInput = Code("invalid_input")
        /// No such task, batch, schedule or database.
        public static let notFound = Code("not_found")
        /// The operation makes no sense in the current state. Nothing was changed.
        public static let invalidState = Code("invalid_state")
        /// Another process held the database past the busy timeout. Retrying later can succeed.
        public static let busy = Code("busy")
        /// The disk (or the database's size limit) is full. Nothing was written; retry once space returns.
        public static let full = Code("full")
        /// The database cannot be opened, is damaged, or its schema was refused.
        public static let database = Code("database")
        /// A handler's result could not be encoded, or a payload could not be decoded.
        public static let coding = Code("coding")

        public var description: String { raw }
    }

    /// The kind of error.
    public let code: Code
    /// The input field at fault (`name`, `payload`, `priority`, …), when there is one.
    public let field: String?
    /// What went wrong and what was expected.
    public let message: String
    /// The store's own error underneath (e.g. a `SQLiteError`), when there is one. Not part of equality.
    public let underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, field: String? = nil, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.field = field
        self.message = message
        self.underlying = underlying
    }

    /// True when retrying the same call later can succeed (busy, full).
    public var isRetryable: Bool { code == .busy || code == .full }

    /// Errors are equal when their code, field and message are.
    public static func == (lhs: RotaError, rhs: RotaError) -> Bool {
        lhs.code == rhs.code && lhs.field == rhs.field && lhs.message == rhs.message
    }

    public var description: String {
        if let field { return "\(field): \(message)" }
        return message
    }
}
