import Foundation
import Logging
import PostgresNIO
import Rota

/// One step of the PostgreSQL schema: a numbered SQL file from `migrations/postgres/`.
public struct PostgresMigration: Sendable, Equatable {
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

    /// A checksum of the SQL (FNV-1a, 64 bits, hex), as the SQLite store computes it: a change to an
    /// applied step is detected by it.
    public var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sql.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The step's statements, in order: the SQL split at semicolons outside comments, quoted strings,
    /// quoted identifiers and dollar-quoted bodies (the extended protocol runs one statement at a time).
    public var statements: [String] {
        let bytes = Array(sql.utf8)
        var statements: [String] = []
        var start = 0, index = 0
        func flush(_ end: Int) {
            let text = String(decoding: bytes[start..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            // A chunk of comments only is no statement.
            let code = text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("--") }
            if !code.joined().trimmingCharacters(in: .whitespaces).isEmpty { statements.append(text) }
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "-"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "-") {
                while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
            } else if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") {
                index += 1
                while index < bytes.count, bytes[index] != byte { index += 1 }
                index += 1
            } else if byte == UInt8(ascii: "$"), let close = bytes[(index + 1)...].firstIndex(of: UInt8(ascii: "$")),
                      bytes[(index + 1)..<close].allSatisfy({ $0 == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) }) {
                // $$ or $tag$: up to the same tag.
                let tag = Array(bytes[index...close])
                index = close + 1
                while index < bytes.count, !(bytes[index...].starts(with: tag)) { index += 1 }
                index += tag.count
            } else if byte == UInt8(ascii: ";") {
                flush(index)
                index += 1
                start = index
            } else {
                index += 1
            }
        }
        if start < bytes.count { flush(bytes.count) }
        return statements
    }

    /// `0001_initial`, the file name without extension.
    public var label: String {
        let number = String(version)
        return String(repeating: "0", count: max(0, 4 - number.count)) + number + "_" + name
    }
}

/// Why a database's schema was refused (the message says what to do).
struct PostgresMigrationError: Error, Sendable {
    let message: String
}

/// What the schema of a PostgreSQL database is, against this binary's migrations.
public struct PostgresSchemaStatus: Sendable, Equatable {
    /// The highest step applied (0: none).
    public var applied: Int
    /// The highest step this binary knows.
    public var known: Int
    /// The steps this binary would apply.
    public var pending: [Int]
}

/// Applies the PostgreSQL migrations: in one transaction that holds an advisory lock (so two schedulers
/// starting at once do not both migrate), each step recorded with its checksum in `rota_migrations`. A
/// database newer than the binary, or whose applied step changed, is refused and left as it is.
enum PostgresMigrator {
    /// Checks (and for ``PostgresTaskStore/Configuration/Access/migrate`` applies) the schema.
    static func prepare(_ client: PostgresClient, configuration: PostgresTaskStore.Configuration,
                        migrations: [PostgresMigration], logger: Logger) async throws {
        try await client.withConnection { connection in
            let place = configuration.displayName
            if configuration.access == .migrate, let schema = configuration.schema,
               try await connection.rows("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema], logger, { try $0.int(0) }).isEmpty {
                // Only when it is missing: CREATE SCHEMA needs the CREATE privilege on the database, which a
                // user of an existing schema may not have. Two processes creating it at once: the loser's error
                // is harmless, the schema exists.
                do {
                    try await connection.run(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(PostgresTaskStore.Configuration.quotedIdentifier(schema))"), logger)
                } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" || error.serverInfo?[.sqlState] == "42P06" {
                }
            }
            try await connection.run("BEGIN", logger)
            do {
                // One migrator per schema at a time; the lock ends with the transaction.
                try await connection.run("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.rota_migrations'))", logger)
                let status = try await status(connection, migrations: migrations, place: place, logger: logger)
                if !status.pending.isEmpty {
                    guard configuration.access == .migrate else {
                        throw PostgresMigrationError(message: status.applied == 0
                            ? "\(place) has no Rota schema; create it first (rota migrate)"
                            : "\(place) needs migrations \(status.pending.map(String.init).joined(separator: ", ")) before it can be used; migrate it first (rota migrate). Nothing was changed.")
                    }
                    if status.applied == 0 {
                        try await connection.run("""
                            CREATE TABLE IF NOT EXISTS rota_migrations (
                                version    integer PRIMARY KEY,
                                name       text    NOT NULL,
                                checksum   text    NOT NULL,
                                applied_at bigint  NOT NULL)
                            """, logger)
                    }
                    for migration in migrations where status.pending.contains(migration.version) {
                        do {
                            for statement in migration.statements {
                                try await connection.run(PostgresQuery(unsafeSQL: statement), logger)
                            }
                        } catch let error as PSQLError {
                            throw PostgresMigrationError(message: "migration \(migration.label) failed on \(place): \(error.serverInfo?[.message] ?? "\(error)"). Nothing was changed.")
                        }
                        try await connection.run("""
                            INSERT INTO rota_migrations(version, name, checksum, applied_at)
                            VALUES (\(migration.version), \(migration.name), \(migration.checksum), \(Date().unixMillis))
                            """, logger)
                    }
                }
                try await connection.run("COMMIT", logger)
            } catch {
                _ = try? await connection.run("ROLLBACK", logger)
                throw error
            }
        }
    }

    /// The schema's status (inside the caller's transaction).
    static func status(_ connection: PostgresConnection, migrations: [PostgresMigration], place: String,
                       logger: Logger) async throws -> PostgresSchemaStatus {
        let known = migrations.last?.version ?? 0
        let hasTable = try await connection.rows("SELECT to_regclass('rota_migrations') IS NOT NULL", [], logger) { try $0.bool(0) }.first ?? false
        guard hasTable else {
            let hasTasks = try await connection.rows("SELECT to_regclass('rota_tasks') IS NOT NULL", [], logger) { try $0.bool(0) }.first ?? false
            if hasTasks {
                throw PostgresMigrationError(message: "\(place) has a rota_tasks table but no rota_migrations table: it is not a Rota schema Rota can vouch for; Rota neither reads nor changes it")
            }
            return PostgresSchemaStatus(applied: 0, known: known, pending: migrations.map(\.version))
        }
        let applied = try await connection.rows("SELECT version, name, checksum FROM rota_migrations ORDER BY version", [], logger) {
            (version: try $0.int(0), name: try $0.string(1), checksum: try $0.string(2))
        }
        let highest = applied.last?.version ?? 0
        if highest > known {
            throw PostgresMigrationError(message: "\(place) has schema version \(highest), newer than this rota binary knows (\(known)); use a newer rota. Nothing was changed.")
        }
        for row in applied {
            guard let migration = migrations.first(where: { $0.version == row.version }) else {
                throw PostgresMigrationError(message: "\(place) records migration \(row.version) (\(row.name)), which this binary does not have. Nothing was changed.")
            }
            if migration.checksum != row.checksum {
                throw PostgresMigrationError(message: "migration \(migration.label) was changed after it was applied to \(place) (checksum \(row.checksum) in the database, \(migration.checksum) in this binary). Nothing was changed.")
            }
        }
        let done = Set(applied.map(\.version))
        return PostgresSchemaStatus(applied: highest, known: known, pending: migrations.map(\.version).filter { !done.contains($0) })
    }
}
