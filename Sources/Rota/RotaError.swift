import RotaSQLite

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
    /// The SQLite error underneath, when there is one.
    public let underlying: SQLiteError?

    /// Creates an error.
    public init(_ code: Code, field: String? = nil, _ message: String, underlying: SQLiteError? = nil) {
        self.code = code
        self.field = field
        self.message = message
        self.underlying = underlying
    }

    /// True when retrying the same call later can succeed (busy, full).
    public var isRetryable: Bool { code == .busy || code == .full || (underlying?.isRetryable ?? false) }

    public var description: String {
        if let field { return "\(field): \(message)" }
        return message
    }

    /// Wraps an error thrown by the SQLite layer into a ``RotaError`` with an actionable message.
    static func wrapping(_ error: any Error, path: String) -> any Error {
        if let error = error as? MigrationError { return RotaError(.database, error.message) }
        guard let error = error as? SQLiteError else { return error }
        if error.isBusy {
            return RotaError(.busy, "the database \(path) is locked by another process past the busy timeout; nothing was written, retry later (\(error.message))", underlying: error)
        }
        if error.isFull {
            return RotaError(.full, "the disk or database \(path) is full; nothing was written, retry once space is freed (\(error.message))", underlying: error)
        }
        if error.code == 8 /* SQLITE_READONLY */ {
            return RotaError(.database, "the database \(path) is read-only: \(error.message)", underlying: error)
        }
        return RotaError(.database, error.description, underlying: error)
    }
}
