import CSQLite
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A value SQLite stores: the five storage classes.
public enum SQLiteValue: Sendable, Equatable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

extension SQLiteValue: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral, ExpressibleByNilLiteral,
    ExpressibleByFloatLiteral
{
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(stringLiteral value: String) { self = .text(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(floatLiteral value: Double) { self = .real(value) }
}

extension SQLiteValue {
    /// `.integer` for a value, `.null` for nil.
    public static func int(_ value: Int64?) -> SQLiteValue { value.map { .integer($0) } ?? .null }
    /// `.integer` for a value, `.null` for nil.
    public static func int(_ value: Int?) -> SQLiteValue { value.map { .integer(Int64($0)) } ?? .null }
    /// `.text` for a value, `.null` for nil.
    public static func string(_ value: String?) -> SQLiteValue { value.map { .text($0) } ?? .null }
}

/// A prepared statement. Bind parameters (1-based), step, read columns (0-based), reset.
///
/// Statements come from ``Connection/prepare(_:)`` or, cached by SQL text, from ``Connection/cached(_:)``.
/// A cached statement whose step fails is evicted from the cache, so a broken statement is never reused.
///
/// ```swift
/// let stmt = try db.cached("SELECT name FROM tasks WHERE id = ?")
/// try stmt.bind([.integer(42)])
/// while try stmt.step() { print(stmt.string(0)) }
/// ```
public final class Statement {
    let handle: OpaquePointer
    unowned let connection: Connection
    /// The SQL text this statement was prepared from.
    public let sql: String
    let isCached: Bool

    init(connection: Connection, sql: String, cached: Bool) throws {
        var stmt: OpaquePointer?
        let flags: UInt32 = cached ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
        let rc = sqlite3_prepare_v3(connection.handle, sql, -1, flags, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw SQLiteError.make(rc, connection.handle, sql: sql)
        }
        self.handle = stmt
        self.connection = connection
        self.sql = sql
        self.isCached = cached
    }

    deinit { sqlite3_finalize(handle) }

    // MARK: Binding

    /// Resets the statement, clears old bindings and binds `values` to parameters 1...n.
    /// - Throws: ``SQLiteError`` (`SQLITE_RANGE`) when the number of values is not the number of
    ///   parameters (a missing value would otherwise be bound as NULL without a word).
    public func bind(_ values: [SQLiteValue]) throws {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        let expected = Int(sqlite3_bind_parameter_count(handle))
        if values.count != expected {
            throw SQLiteError(extendedCode: SQLITE_RANGE,
                              message: "expected \(expected) parameter value\(expected == 1 ? "" : "s"), got \(values.count)",
                              sql: sql)
        }
        for (offset, value) in values.enumerated() {
            try bind(value, at: Int32(offset + 1))
        }
    }

    /// Binds one value to parameter `index` (1-based).
    public func bind(_ value: SQLiteValue, at index: Int32) throws {
        let rc: Int32
        switch value {
        case .null: rc = sqlite3_bind_null(handle, index)
        case .integer(let v): rc = sqlite3_bind_int64(handle, index, v)
        case .real(let v): rc = sqlite3_bind_double(handle, index, v)
        case .text(let v): rc = Self.bindText(v, handle, index)
        case .blob(let v):
            // A nil base address would bind NULL, so an empty blob is bound as a zero-length blob explicitly.
            rc = v.isEmpty ? sqlite3_bind_zeroblob(handle, index, 0) : v.withUnsafeBytes {
                sqlite3_bind_blob64(handle, index, $0.baseAddress, sqlite3_uint64($0.count), rota_sqlite_transient())
            }
        }
        try SQLiteError.check(rc, connection.handle, sql: sql)
    }

    /// Binds an integer to parameter `index` (1-based) without boxing.
    public func bind(_ value: Int64, at index: Int32) throws {
        try SQLiteError.check(sqlite3_bind_int64(handle, index, value), connection.handle, sql: sql)
    }

    /// Binds a string (or NULL) to parameter `index` (1-based) without boxing.
    public func bind(_ value: String?, at index: Int32) throws {
        let rc = value.map { Self.bindText($0, handle, index) } ?? sqlite3_bind_null(handle, index)
        try SQLiteError.check(rc, connection.handle, sql: sql)
    }

    /// Binds an integer (or NULL) to parameter `index` (1-based) without boxing.
    public func bindInt(_ value: Int64?, at index: Int32) throws {
        let rc = value.map { sqlite3_bind_int64(handle, index, $0) } ?? sqlite3_bind_null(handle, index)
        try SQLiteError.check(rc, connection.handle, sql: sql)
    }

    /// Runs the statement to completion with the values bound so far (typed binds after ``reset()``),
    /// discarding rows, then resets it. Bind every parameter: one left unbound is NULL.
    public func execute() throws {
        defer { sqlite3_reset(handle) }
        while try step() {}
    }

    /// Binds all of `text`'s UTF-8 bytes: an explicit length, so an embedded NUL does not cut the string.
    private static func bindText(_ text: String, _ handle: OpaquePointer, _ index: Int32) -> Int32 {
        text.withCString {
            sqlite3_bind_text64(handle, index, $0, sqlite3_uint64(text.utf8.count), rota_sqlite_transient(), UInt8(SQLITE_UTF8))
        }
    }

    /// Resets the statement so it can run again (bindings are kept).
    public func reset() { sqlite3_reset(handle) }

    // MARK: Stepping

    /// Advances to the next row.
    /// - Returns: true when a row is available, false when the statement is done.
    /// - Throws: ``SQLiteError``; a cached statement that fails is evicted from its connection's cache.
    @discardableResult
    public func step() throws -> Bool {
        errno = 0  // so a failed write's reason (EFBIG, ENOSPC) is this step's, not an older call's
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let error = SQLiteError.make(rc, connection.handle, sql: sql, osErrno: errno)
        sqlite3_reset(handle)
        if isCached { connection.evict(self) }
        throw error
    }

    /// Runs the statement to completion with `values` bound, discarding rows.
    public func run(_ values: [SQLiteValue] = []) throws {
        try bind(values)
        defer { sqlite3_reset(handle) }
        while try step() {}
    }

    // MARK: Columns

    /// The number of result columns.
    public var columnCount: Int32 { sqlite3_column_count(handle) }
    /// The name of result column `index`.
    public func columnName(_ index: Int32) -> String { String(cString: sqlite3_column_name(handle, index)) }
    /// True when column `index` of the current row is NULL.
    public func isNull(_ index: Int32) -> Bool { sqlite3_column_type(handle, index) == SQLITE_NULL }
    /// Column `index` as an integer (0 for NULL).
    public func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }
    /// Column `index` as an Int (0 for NULL).
    public func int(_ index: Int32) -> Int { Int(sqlite3_column_int64(handle, index)) }
    /// Column `index` as a Double (0 for NULL).
    public func double(_ index: Int32) -> Double { sqlite3_column_double(handle, index) }
    /// Column `index` as text ("" for NULL).
    public func string(_ index: Int32) -> String {
        guard let text = sqlite3_column_text(handle, index) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, index))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }
    /// Column `index` as bytes (empty for NULL).
    public func blob(_ index: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, index))
        guard count > 0, let bytes = sqlite3_column_blob(handle, index) else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: count))
    }
    /// Column `index` as an integer, or nil for NULL.
    public func optionalInt64(_ index: Int32) -> Int64? { isNull(index) ? nil : int64(index) }
    /// Column `index` as a Double, or nil for NULL.
    public func optionalDouble(_ index: Int32) -> Double? { isNull(index) ? nil : double(index) }
    /// Column `index` as text, or nil for NULL.
    public func optionalString(_ index: Int32) -> String? { isNull(index) ? nil : string(index) }
    /// Column `index` as bytes, or nil for NULL.
    public func optionalBlob(_ index: Int32) -> [UInt8]? { isNull(index) ? nil : blob(index) }
    /// Column `index` as a ``SQLiteValue`` of its own storage class.
    public func value(_ index: Int32) -> SQLiteValue {
        switch sqlite3_column_type(handle, index) {
        case SQLITE_INTEGER: .integer(int64(index))
        case SQLITE_FLOAT: .real(double(index))
        case SQLITE_TEXT: .text(string(index))
        case SQLITE_BLOB: .blob(blob(index))
        default: .null
        }
    }
}
