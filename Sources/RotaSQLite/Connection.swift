import CSQLite
import Foundation

/// One SQLite connection: opening with checks, pragmas, a statement cache and transactions.
///
/// A connection is not thread-safe; use it from one thread at a time (the task store guards its
/// connections with a lock). Open several connections to the same file for concurrent readers: the
/// database runs in WAL mode, where readers never block the writer.
///
/// ```swift
/// let db = try Connection(path: "rota.db")
/// try db.transaction(.immediate) {
///     try db.run("INSERT INTO t(x) VALUES (?)", [.integer(1)])
/// }
/// ```
public final class Connection {
    /// How to open the file.
    public enum Mode: Sendable {
        /// Read and write, creating the file when it does not exist.
        case readWriteCreate
        /// Read and write an existing file.
        case readWrite
        /// Read only; every write fails with `SQLITE_READONLY`.
        case readOnly
    }

    /// The `synchronous` pragma: how hard SQLite works to make a commit durable.
    public enum Synchronous: String, Sendable, CaseIterable {
        /// A committed transaction survives power loss (fsync on every commit). The default.
        case full = "FULL"
        /// In WAL mode, a commit survives a process crash but the last ones may be lost on power loss.
        /// Much faster for one-row transactions.
        case normal = "NORMAL"
    }

    /// What kind of lock a transaction takes at `BEGIN`.
    public enum TransactionKind: String, Sendable {
        /// Takes locks as statements need them (reads first). Only for read-only work.
        case deferred = "DEFERRED"
        /// Takes the write lock at once: the kind every writer should use in WAL mode.
        case immediate = "IMMEDIATE"
        /// Takes the write lock and keeps readers out (in WAL mode, same as immediate).
        case exclusive = "EXCLUSIVE"
    }

    /// Options for opening a connection.
    public struct Options: Sendable {
        /// How to open the file.
        public var mode: Mode
        /// The `synchronous` pragma.
        public var synchronous: Synchronous
        /// How long a statement waits for another connection's lock before failing with `SQLITE_BUSY`.
        public var busyTimeout: Duration
        /// Run `PRAGMA quick_check` at open and refuse a damaged file.
        public var quickCheck: Bool
        /// Enforce foreign keys.
        public var foreignKeys: Bool
        /// The permission bits of a database file this connection creates (`.readWriteCreate` only), e.g.
        /// `0o600` for the owner only; `nil` leaves it to SQLite (0644 less the umask). SQLite gives the
        /// `-wal` and `-shm` files it creates later the database file's own mode. An existing file keeps its mode.
        public var newFileMode: UInt16?

        /// Creates options; the defaults are the durable ones.
        public init(
            mode: Mode = .readWriteCreate,
            synchronous: Synchronous = .full,
            busyTimeout: Duration = .seconds(5),
            quickCheck: Bool = true,
            foreignKeys: Bool = true,
            newFileMode: UInt16? = nil
        ) {
            self.mode = mode
            self.synchronous = synchronous
            self.busyTimeout = busyTimeout
            self.quickCheck = quickCheck
            self.foreignKeys = foreignKeys
            self.newFileMode = newFileMode
        }
    }

    let handle: OpaquePointer
    /// The path this connection was opened with.
    public let path: String
    /// The options this connection was opened with.
    public let options: Options
    private var cache: [String: Statement] = [:]
    private var savepointDepth = 0
    /// Set when a failed open closed the handle. Swift runs `deinit` when an initializer throws after
    /// every stored property is set, and the handle must not be closed twice.
    private var isClosed = false

    /// Opens (and, in `.readWriteCreate` mode, creates) the database at `path`.
    ///
    /// The file is checked before anything is written: a file that is not a SQLite database, or fails
    /// `quick_check`, or a read-only file opened for writing, is refused with a clear error and left as it was.
    ///
    /// - Throws: ``SQLiteError`` (`SQLITE_CANTOPEN`, `SQLITE_NOTADB`, `SQLITE_CORRUPT`, `SQLITE_READONLY`).
    public init(path: String, options: Options = Options()) throws {
        self.path = path
        self.options = options
        var flags: Int32 = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        switch options.mode {
        case .readWriteCreate: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        case .readWrite: flags |= SQLITE_OPEN_READWRITE
        case .readOnly: flags |= SQLITE_OPEN_READONLY
        }
        if options.mode != .readWriteCreate, !FileManager.default.fileExists(atPath: path) {
            throw SQLiteError(extendedCode: SQLITE_CANTOPEN, message: "no database at \(path)")
        }
        if options.mode == .readWriteCreate, let fileMode = options.newFileMode {
            Self.createEmptyFile(path, mode: fileMode)
        }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let error = SQLiteError.make(rc, db)
            sqlite3_close_v2(db)
            throw SQLiteError(extendedCode: error.extendedCode, message: "cannot open \(path): \(error.message)")
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        let timeoutMs = options.busyTimeout.components.seconds * 1000
            + options.busyTimeout.components.attoseconds / 1_000_000_000_000_000
        sqlite3_busy_timeout(db, Int32(clamping: timeoutMs))

        // Validate before any write: SQLite falls back to read-only silently, and reads the header lazily.
        if options.mode != .readOnly, sqlite3_db_readonly(db, "main") == 1 {
            closeAfterFailedOpen()
            throw SQLiteError(extendedCode: SQLITE_READONLY, message: "\(path) is read-only (check the file's permissions)")
        }
        // SQLite creates its journal and WAL files next to the database; in a read-only directory every
        // write would fail later with a bare "attempt to write a readonly database".
        if options.mode != .readOnly, path != ":memory:", !path.isEmpty {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            if !FileManager.default.isWritableFile(atPath: directory) {
                closeAfterFailedOpen()
                throw SQLiteError(extendedCode: SQLITE_READONLY | (6 << 8),  // SQLITE_READONLY_DIRECTORY
                                  message: "\(path) is in a read-only directory (\(directory)); SQLite needs to create its journal files there (check the directory's permissions)")
            }
        }
        do {
            _ = try scalarInt("SELECT count(*) FROM sqlite_schema")
        } catch let error as SQLiteError {
            closeAfterFailedOpen()
            if error.isCorrupt {
                throw SQLiteError(extendedCode: error.extendedCode, message: "\(path) is not a SQLite database, or is damaged: \(error.message)")
            }
            throw error
        }
        if options.quickCheck {
            let report: [String]
            do {
                report = try query("PRAGMA quick_check(5)") { $0.string(0) }
            } catch let error as SQLiteError {
                closeAfterFailedOpen()
                throw SQLiteError(extendedCode: error.extendedCode, message: "\(path) failed its integrity check: \(error.message)")
            }
            if report != ["ok"] {
                closeAfterFailedOpen()
                throw SQLiteError(extendedCode: SQLITE_CORRUPT, message: "\(path) failed its integrity check: \(report.joined(separator: "; "))")
            }
        }
        do {
            try execute("PRAGMA synchronous = \(options.synchronous.rawValue)")
            try execute("PRAGMA foreign_keys = \(options.foreignKeys ? "ON" : "OFF")")
        } catch {
            closeAfterFailedOpen()
            throw error
        }
    }

    deinit {
        if !isClosed {
            cache.removeAll()
            sqlite3_close_v2(handle)
        }
    }

    /// Creates `path` as an empty file (an empty file is an empty database to SQLite) with exactly `mode`,
    /// unless something exists there already. A path SQLite does not treat as a file (`:memory:`, empty, a
    /// `file:` URI) is left alone; failures are left for SQLite's open to report.
    private static func createEmptyFile(_ path: String, mode: UInt16) {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode))
        guard descriptor >= 0 else { return }
        _ = fchmod(descriptor, mode_t(mode))  // the umask may have taken bits away
        close(descriptor)
    }

    /// Finalizes the cached statements and closes the handle, when the checks at open refuse the file.
    private func closeAfterFailedOpen() {
        cache.removeAll()
        sqlite3_close_v2(handle)
        isClosed = true
    }

    /// Switches the file to WAL journal mode (persistent; readers never block the writer).
    /// - Throws: ``SQLiteError`` when the mode cannot be set (for example, a read-only directory).
    public func enableWAL() throws {
        let mode = try query("PRAGMA journal_mode = WAL") { $0.string(0) }.first ?? ""
        if mode.lowercased() != "wal" {
            throw SQLiteError(extendedCode: SQLITE_CANTOPEN,
                              message: "cannot switch \(path) to WAL mode (journal mode is \(mode)); is its directory writable?")
        }
    }

    /// The `journal_mode` of the file (`wal`, `delete`, …).
    public func journalMode() throws -> String {
        try query("PRAGMA journal_mode") { $0.string(0) }.first ?? ""
    }

    // MARK: Statements

    /// Runs one or more SQL statements separated by semicolons, without parameters.
    /// - Throws: ``SQLiteError`` naming the SQL.
    public func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        errno = 0
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let osErrno = errno
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(errorMessage)
            let code = sqlite3_extended_errcode(handle)
            throw SQLiteError(extendedCode: code, message: message, sql: sql,
                              systemErrno: SQLiteError.systemErrno(code, handle, osErrno: osErrno))
        }
    }

    /// Prepares a statement that is not cached (finalized when released).
    public func prepare(_ sql: String) throws -> Statement {
        try Statement(connection: self, sql: sql, cached: false)
    }

    /// Returns the cached statement for `sql`, preparing it on first use.
    public func cached(_ sql: String) throws -> Statement {
        if let statement = cache[sql] { return statement }
        let statement = try Statement(connection: self, sql: sql, cached: true)
        cache[sql] = statement
        return statement
    }

    /// The number of statements in the cache.
    public var cachedStatementCount: Int { cache.count }

    /// Removes `statement` from the cache, unless the cache already holds a newer statement for its SQL.
    func evict(_ statement: Statement) {
        if cache[statement.sql] === statement { cache.removeValue(forKey: statement.sql) }
    }

    /// Runs a (cached) statement with `values` bound, to completion.
    /// - Returns: the number of rows it changed.
    @discardableResult
    public func run(_ sql: String, _ values: [SQLiteValue] = []) throws -> Int {
        try cached(sql).run(values)
        return changes
    }

    /// Runs a (cached) query and maps each row.
    public func query<T>(_ sql: String, _ values: [SQLiteValue] = [], _ row: (Statement) throws -> T) throws -> [T] {
        let statement = try cached(sql)
        try statement.bind(values)
        defer { statement.reset() }
        var rows: [T] = []
        while try statement.step() { rows.append(try row(statement)) }
        return rows
    }

    /// Runs a (cached) query and maps its first row, if any.
    public func queryFirst<T>(_ sql: String, _ values: [SQLiteValue] = [], _ row: (Statement) throws -> T) throws -> T? {
        let statement = try cached(sql)
        try statement.bind(values)
        defer { statement.reset() }
        return try statement.step() ? try row(statement) : nil
    }

    /// The first column of the first row as an integer, or nil when there is no row or it is NULL.
    public func scalarInt(_ sql: String, _ values: [SQLiteValue] = []) throws -> Int64? {
        try queryFirst(sql, values) { $0.optionalInt64(0) } ?? nil
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    public var changes: Int { Int(sqlite3_changes(handle)) }
    /// The rowid of the last successful INSERT.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    /// True when no transaction is open.
    public var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }

    // MARK: Transactions

    /// Runs `body` in a transaction: commits when it returns, rolls back when it throws and rethrows
    /// its error. Inside another transaction, runs in a savepoint instead.
    ///
    /// - Parameters:
    ///   - kind: `.immediate` (the default) takes the write lock at `BEGIN`, so a writer never fails halfway
    ///     with `SQLITE_BUSY` after it has read.
    ///   - body: the work; every statement in it is part of the transaction.
    /// - Throws: the body's error, or ``SQLiteError`` from `BEGIN`/`COMMIT` (busy past the timeout, disk full).
    @discardableResult
    public func transaction<T>(_ kind: TransactionKind = .immediate, _ body: () throws -> T) throws -> T {
        if !isAutocommit {
            savepointDepth += 1
            let name = "rota_sp\(savepointDepth)"
            defer { savepointDepth -= 1 }
            try execute("SAVEPOINT \(name)")
            do {
                let value = try body()
                try execute("RELEASE \(name)")
                return value
            } catch {
                try? execute("ROLLBACK TO \(name)")
                try? execute("RELEASE \(name)")
                throw error
            }
        }
        try cached("BEGIN \(kind.rawValue)").run()
        do {
            let value = try body()
            try cached("COMMIT").run()
            return value
        } catch {
            if !isAutocommit { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// Interrupts a long-running statement on this connection from another thread.
    public func interrupt() { sqlite3_interrupt(handle) }

    /// The version of the SQLite library in use, e.g. "3.40.1".
    public static var libraryVersion: String { String(cString: sqlite3_libversion()) }
}
