import Foundation

/// One step of the schema: a numbered SQL file from `migrations/`.
public struct Migration: Sendable, Equatable {
    /// The step's number (1, 2, …); steps are applied in this order.
    public let version: Int
    /// The step's name (the file name after the number).
    public let name: String
    /// The SQL the step runs.
    public let sql: String

    /// Creates a migration.
    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// A checksum of the SQL (FNV-1a, 64 bits, hex): a change to an applied step is detected by it.
    public var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sql.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// `0001_initial`, the file name without extension.
    public var label: String {
        let number = String(version)
        return String(repeating: "0", count: max(0, 4 - number.count)) + number + "_" + name
    }
}

/// Why a database's schema was refused.
public struct MigrationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The kinds of refusal.
    public enum Code: Sendable, Equatable {
        /// The file has tables but is not a Rota database.
        case foreignDatabase
        /// The database was migrated by a newer binary.
        case newerSchema
        /// A migration applied to the database differs from the one in this binary.
        case changedMigration
        /// The database lacks migrations and was opened read-only.
        case needsMigration
        /// A step would leave rows whose foreign keys point at missing rows (rolled back).
        case foreignKeyViolation
    }
    /// What kind of refusal.
    public let code: Code
    /// A sentence a person can act on.
    public let message: String

    public var description: String { message }
}

/// Applies migrations in order, each in its own `BEGIN IMMEDIATE` transaction, and records each with
/// its checksum in `rota_migrations`. A database that is newer than the binary or whose applied
/// migrations changed is refused before anything is written.
public enum Migrator {
    /// The schema state of a database relative to a list of migrations.
    public struct Status: Sendable, Equatable {
        /// The highest version applied (0 for a new database).
        public var appliedVersion: Int
        /// The highest version the binary knows.
        public var knownVersion: Int
        /// The migrations still to apply.
        public var pending: [Int]
    }

    /// Reads the database's applied migrations and compares them with `migrations`.
    /// - Throws: ``MigrationError`` for a foreign, newer or changed database; ``SQLiteError``.
    public static func status(of db: Connection, against migrations: [Migration]) throws -> Status {
        let known = migrations.map(\.version).max() ?? 0
        let hasTable = try db.scalarInt(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'rota_migrations'") ?? 0
        if hasTable == 0 {
            let tables = try db.scalarInt(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'") ?? 0
            if tables > 0 {
                throw MigrationError(code: .foreignDatabase,
                                     message: "\(db.path) is a SQLite database but not a Rota database (it has \(tables) table\(tables == 1 ? "" : "s") and no rota_migrations table); Rota neither reads nor changes it")
            }
            return Status(appliedVersion: 0, knownVersion: known, pending: migrations.map(\.version))
        }
        let applied = try db.query("SELECT version, name, checksum FROM rota_migrations ORDER BY version") {
            (version: $0.int(0), name: $0.string(1), checksum: $0.string(2))
        }
        let byVersion = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        let highest = applied.last?.version ?? 0
        if highest > known {
            throw MigrationError(code: .newerSchema,
                                 message: "\(db.path) has schema version \(highest), newer than this rota binary knows (\(known)); use a newer rota. Nothing was changed.")
        }
        for row in applied {
            guard let migration = byVersion[row.version] else {
                throw MigrationError(code: .changedMigration,
                                     message: "\(db.path) records migration \(row.version) (\(row.name)), which this binary does not have. Nothing was changed.")
            }
            if migration.checksum != row.checksum {
                throw MigrationError(code: .changedMigration,
                                     message: "migration \(migration.label) was changed after it was applied to \(db.path) (checksum \(row.checksum) in the database, \(migration.checksum) in this binary). Nothing was changed.")
            }
        }
        let appliedSet = Set(applied.map(\.version))
        return Status(appliedVersion: highest, knownVersion: known,
                      pending: migrations.map(\.version).filter { !appliedSet.contains($0) })
    }

    /// Applies every pending migration, in version order, each in one transaction.
    ///
    /// An up-to-date database is only read (so a read-only connection to it is fine); a read-only
    /// connection to a database with pending migrations is refused with `.needsMigration`.
    /// - Returns: the versions applied by this call.
    /// - Throws: ``MigrationError`` for a refusal, before anything is written, or `.foreignKeyViolation` from a
    ///   step that would leave a dangling reference (that step rolled back); ``SQLiteError`` from a failing
    ///   step (rolled back). Steps applied before the failing one stay applied.
    @discardableResult
    public static func migrate(_ db: Connection, with migrations: [Migration], now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) throws -> [Int] {
        let migrations = migrations.sorted { $0.version < $1.version }
        // Check first without the write lock: refusals and the usual nothing-to-do case take no lock.
        let pending = try status(of: db, against: migrations).pending
        if pending.isEmpty { return [] }
        if db.options.mode == .readOnly {
            throw MigrationError(code: .needsMigration,
                                 message: "\(db.path) needs migrations \(pending.map(String.init).joined(separator: ", ")) but was opened read-only; open it read-write to migrate it. Nothing was changed.")
        }
        // Foreign keys are off while the steps run, as SQLite's procedure for schema changes asks: a step that
        // rebuilds a table drops the old one, and with foreign keys on that drop would first delete its rows
        // (and cascade to their children). Each step checks the keys before it commits instead.
        let foreignKeys = try db.scalarInt("PRAGMA foreign_keys") == 1
        if foreignKeys { try db.execute("PRAGMA foreign_keys = OFF") }
        let done: [Int]
        do {
            done = try apply(migrations, to: db, checkingForeignKeys: foreignKeys, now: now)
        } catch {
            if foreignKeys { try? db.execute("PRAGMA foreign_keys = ON") } // the step's error is the one to report
            throw error
        }
        // Back on, or the caller would run without the cascades it relies on: a failure here is an error.
        if foreignKeys { try db.execute("PRAGMA foreign_keys = ON") }
        return done
    }

    /// How many rows of each table point at a missing row of each parent (`PRAGMA foreign_key_check`),
    /// keyed `table -> parent`.
    private static func danglingReferences(_ db: Connection) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for key in try db.query("PRAGMA foreign_key_check", [], { "\($0.string(0)) -> \($0.string(2))" }) {
            counts[key, default: 0] += 1
        }
        return counts
    }

    /// Applies the pending steps of `migrations` (sorted), each in its own transaction.
    private static func apply(_ migrations: [Migration], to db: Connection, checkingForeignKeys foreignKeys: Bool,
                              now: Int64) throws -> [Int] {
        var done: [Int] = []
        for migration in migrations {
            let applied: Bool = try db.transaction(.immediate) {
                // Re-read inside the write lock: another process may have migrated meanwhile.
                let status = try status(of: db, against: migrations)
                guard status.pending.contains(migration.version) else { return false }
                try db.execute("""
                    CREATE TABLE IF NOT EXISTS rota_migrations (
                        version INTEGER PRIMARY KEY,
                        name TEXT NOT NULL,
                        checksum TEXT NOT NULL,
                        applied_at INTEGER NOT NULL
                    )
                    """)
                // Dangling references already in the file (rows edited by hand with foreign keys off) are the
                // file's, not the step's: only new ones refuse the step.
                let before = foreignKeys ? try danglingReferences(db) : [:]
                try db.execute(migration.sql)
                if foreignKeys {
                    let added = try danglingReferences(db).compactMap { key, count -> String? in
                        let new = count - before[key, default: 0]
                        return new > 0 ? "\(key): \(new)" : nil
                    }.sorted()
                    if !added.isEmpty {
                        throw MigrationError(code: .foreignKeyViolation, message: """
                            migration \(migration.label) would leave rows of \(db.path) pointing at missing rows \
                            (\(added.joined(separator: "; "))); that step was rolled back.
                            """)
                    }
                }
                try db.run("INSERT INTO rota_migrations(version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                           [.integer(Int64(migration.version)), .text(migration.name), .text(migration.checksum), .integer(now)])
                return true
            }
            if applied { done.append(migration.version) }
        }
        return done
    }
}
