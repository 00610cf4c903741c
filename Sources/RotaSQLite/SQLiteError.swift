import CSQLite
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An error reported by SQLite, with everything a person needs to act on it.
///
/// Raw C result codes are turned into this type in exactly one place (``SQLiteError/check(_:_:sql:)``).
///
/// ```swift
/// do { try connection.execute("BEGIN IMMEDIATE") }
/// catch let error as SQLiteError where error.isBusy { /* retry later */ }
/// ```
public struct SQLiteError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The extended result code (for example 517, `SQLITE_BUSY_SNAPSHOT`).
    public let extendedCode: Int32
    /// SQLite's own message for the failure.
    public let message: String
    /// The SQL that failed, when the failure came from a statement.
    public let sql: String?
    /// The operating system's error number behind an I/O failure (`sqlite3_system_errno`), e.g. 28
    /// (`ENOSPC`) or 27 (`EFBIG`); 0 when there is none or the code is not an I/O, full or open error.
    public let systemErrno: Int32

    /// Creates an error from its parts.
    public init(extendedCode: Int32, message: String, sql: String? = nil, systemErrno: Int32 = 0) {
        self.extendedCode = extendedCode
        self.message = message
        self.sql = sql
        self.systemErrno = systemErrno
    }

    /// The primary result code (the low 8 bits of ``extendedCode``), such as `SQLITE_BUSY`.
    public var code: Int32 { extendedCode & 0xFF }

    /// True when another connection holds a lock past the busy timeout: retrying later can succeed.
    public var isBusy: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }
    /// True when the disk, a file size limit or the database's page limit is full: `SQLITE_FULL`, or an
    /// I/O error (such as `SQLITE_IOERR_WRITE`) whose system error is `ENOSPC` (no space left on the
    /// device), `EFBIG` (past the file size limit, `ulimit -f`) or `EDQUOT` (the disk quota).
    public var isFull: Bool {
        code == SQLITE_FULL || (code == SQLITE_IOERR && Self.fullErrnos.contains(systemErrno))
    }

    /// The system errors that mean "no room": no space, past the file size limit, over the quota.
    static let fullErrnos: [Int32] = [ENOSPC, EFBIG, EDQUOT]
    /// True when the file is not a database, or is damaged.
    public var isCorrupt: Bool { code == SQLITE_CORRUPT || code == SQLITE_NOTADB }
    /// True when a constraint (UNIQUE, CHECK, FOREIGN KEY, NOT NULL) rejected a write.
    public var isConstraint: Bool { code == SQLITE_CONSTRAINT }
    /// True when the failure is transient (busy, locked, full, I/O) and the same work may succeed later.
    public var isRetryable: Bool { isBusy || isFull || code == SQLITE_IOERR }

    /// The symbolic name of the primary code, e.g. `SQLITE_BUSY`.
    public var codeName: String {
        switch code {
        case SQLITE_ERROR: "SQLITE_ERROR"
        case SQLITE_INTERNAL: "SQLITE_INTERNAL"
        case SQLITE_PERM: "SQLITE_PERM"
        case SQLITE_ABORT: "SQLITE_ABORT"
        case SQLITE_BUSY: "SQLITE_BUSY"
        case SQLITE_LOCKED: "SQLITE_LOCKED"
        case SQLITE_NOMEM: "SQLITE_NOMEM"
        case SQLITE_READONLY: "SQLITE_READONLY"
        case SQLITE_INTERRUPT: "SQLITE_INTERRUPT"
        case SQLITE_IOERR: "SQLITE_IOERR"
        case SQLITE_CORRUPT: "SQLITE_CORRUPT"
        case SQLITE_FULL: "SQLITE_FULL"
        case SQLITE_CANTOPEN: "SQLITE_CANTOPEN"
        case SQLITE_PROTOCOL: "SQLITE_PROTOCOL"
        case SQLITE_SCHEMA: "SQLITE_SCHEMA"
        case SQLITE_TOOBIG: "SQLITE_TOOBIG"
        case SQLITE_CONSTRAINT: "SQLITE_CONSTRAINT"
        case SQLITE_MISMATCH: "SQLITE_MISMATCH"
        case SQLITE_MISUSE: "SQLITE_MISUSE"
        case SQLITE_RANGE: "SQLITE_RANGE"
        case SQLITE_NOTADB: "SQLITE_NOTADB"
        default: "SQLITE_\(code)"
        }
    }

    public var description: String {
        var text = "\(codeName) (\(extendedCode)): \(message)"
        if systemErrno != 0 { text += " (errno \(systemErrno): \(String(cString: strerror(systemErrno))))" }
        if let sql { text += " — in: \(sql)" }
        return text
    }

    /// Throws a ``SQLiteError`` unless `result` is `SQLITE_OK`, `SQLITE_ROW` or `SQLITE_DONE`.
    ///
    /// - Parameters:
    ///   - result: the code a `sqlite3_*` call returned.
    ///   - db: the connection, whose message and extended code describe the failure.
    ///   - sql: the statement that failed, if any.
    /// - Throws: ``SQLiteError`` for any other code.
    @inline(__always)
    static func check(_ result: Int32, _ db: OpaquePointer?, sql: String? = nil) throws {
        if result == SQLITE_OK || result == SQLITE_ROW || result == SQLITE_DONE { return }
        throw make(result, db, sql: sql)
    }

    static func make(_ result: Int32, _ db: OpaquePointer?, sql: String? = nil, osErrno: Int32 = 0) -> SQLiteError {
        let extended = db.map { sqlite3_extended_errcode($0) } ?? result
        // The connection's code can be stale when the call failed before touching it; trust `result` then.
        let code = (extended & 0xFF) == (result & 0xFF) ? extended : result
        let message = db.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
            ?? String(cString: sqlite3_errstr(result))
        return SQLiteError(extendedCode: code, message: message, sql: sql, systemErrno: systemErrno(code, db, osErrno: osErrno))
    }

    /// The system error behind an I/O, full or can't-open failure; 0 for other codes.
    ///
    /// SQLite records it (`sqlite3_system_errno`) for a statement's failures but not when `COMMIT` fails
    /// writing the WAL, where it keeps an older value; so `osErrno`, the `errno` the failed call left
    /// (cleared before it), wins when it says the disk or a limit is full.
    static func systemErrno(_ code: Int32, _ db: OpaquePointer?, osErrno: Int32 = 0) -> Int32 {
        guard [SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN].contains(code & 0xFF) else { return 0 }
        if fullErrnos.contains(osErrno) { return osErrno }
        let recorded = db.map { sqlite3_system_errno($0) } ?? 0
        return recorded != 0 ? recorded : osErrno
    }
}
