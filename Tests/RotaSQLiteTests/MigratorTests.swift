import Foundation
import RotaSQLite
import Testing

/// `Migrator` and `Migration`: applying in order, recording checksums, and refusing databases it must not touch.
@Suite struct MigratorTests {
    static let m1 = Migration(version: 1, name: "initial", sql: """
        CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        INSERT INTO jobs(name) VALUES ('seed');
        """)
    static let m2 = Migration(version: 2, name: "notes", sql: """
        CREATE TABLE notes (job INTEGER REFERENCES jobs(id), body TEXT);
        CREATE INDEX notes_job ON notes(job);
        """)
    static let m3 = Migration(version: 3, name: "extra", sql: "ALTER TABLE jobs ADD COLUMN extra TEXT;")

    static let t1: Int64 = 1_700_000_000_000
    static let t2: Int64 = 1_800_000_000_000

    /// One row of `rota_migrations`.
    struct Record: Equatable {
        var version: Int
        var name: String
        var checksum: String
        var appliedAt: Int64
    }

    private func records(_ db: Connection) throws -> [Record] {
        try db.query("SELECT version, name, checksum, applied_at FROM rota_migrations ORDER BY version") {
            Record(version: $0.int(0), name: $0.string(1), checksum: $0.string(2), appliedAt: $0.int64(3))
        }
    }

    /// Every schema object, as `type name sql`, sorted.
    private func schema(_ db: Connection) throws -> [String] {
        try db.query("SELECT type, name, ifnull(sql, '') FROM sqlite_schema ORDER BY type, name") {
            "\($0.string(0)) \($0.string(1)) \($0.string(2))"
        }
    }

    /// Opens a fresh connection to `path`, runs `body`, and closes it.
    @discardableResult
    private func withConnection<T>(_ path: String, mode: Connection.Mode = .readWrite, _ body: (Connection) throws -> T) throws -> T {
        let db = try Connection(path: path, options: testOptions(mode: mode))
        return try body(db)
    }

    /// Asserts that `body` throws a `MigrationError` with `code`, and that the file at `path` did not change.
    private func expectRefusal(
        _ code: MigrationError.Code, at path: String, messageContains parts: [String],
        sourceLocation: SourceLocation = #_sourceLocation,
        _ body: (Connection) throws -> Void
    ) throws {
        let bytesBefore = try fileBytes(path)
        let schemaBefore = try withConnection(path) { try schema($0) }
        let error = try withConnection(path) { db throws in
            #expect(throws: MigrationError.self, sourceLocation: sourceLocation) { try body(db) }
        }
        #expect(error?.code == code, sourceLocation: sourceLocation)
        for part in parts {
            #expect(error?.message.contains(part) == true, "message: \(error?.message ?? "none")", sourceLocation: sourceLocation)
        }
        #expect(error?.description == error?.message, sourceLocation: sourceLocation)
        #expect(try withConnection(path) { try schema($0) } == schemaBefore, sourceLocation: sourceLocation)
        #expect(try fileBytes(path) == bytesBefore, "the file changed", sourceLocation: sourceLocation)
    }

    // MARK: Applying

    @Test func aFreshDatabaseGetsEveryMigrationInOrderEachRecordedWithItsChecksum() throws {
        try withDatabase { db, _ throws in
            let applied = try Migrator.migrate(db, with: [Self.m1, Self.m2], now: Self.t1)
            #expect(applied == [1, 2])
            #expect(try tableNames(db) == ["jobs", "notes", "rota_migrations"])
            #expect(try db.scalarInt("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'notes_job'") == 1)
            #expect(try db.query("SELECT name FROM jobs") { $0.string(0) } == ["seed"])
            #expect(try records(db) == [
                Record(version: 1, name: "initial", checksum: Self.m1.checksum, appliedAt: Self.t1),
                Record(version: 2, name: "notes", checksum: Self.m2.checksum, appliedAt: Self.t1),
            ])
            #expect(db.isAutocommit)
        }
    }

    @Test func statusOfAFreshDatabaseListsEveryMigrationAsPending() throws {
        try withDatabase { db, _ throws in
            let status = try Migrator.status(of: db, against: [Self.m1, Self.m2])
            #expect(status.appliedVersion == 0)
            #expect(status.knownVersion == 2)
            #expect(status.pending == [1, 2])
            #expect(try tableNames(db) == [], "status only reads")
        }
    }

    @Test func statusAfterMigratingHasNothingPending() throws {
        try withDatabase { db, _ throws in
            try Migrator.migrate(db, with: [Self.m1, Self.m2], now: Self.t1)
            let current = try Migrator.status(of: db, against: [Self.m1, Self.m2])
            #expect(current.appliedVersion == 2)
            #expect(current.knownVersion == 2)
            #expect(current.pending == [])
            let behind = try Migrator.status(of: db, against: [Self.m1, Self.m2, Self.m3])
            #expect(behind.appliedVersion == 2)
            #expect(behind.knownVersion == 3)
            #expect(behind.pending == [3])
        }
    }

    @Test func reopeningAMigratedDatabaseAppliesNothingAndChangesNothing() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("rota.db")
            try withConnection(path, mode: .readWriteCreate) { db throws in
                try Migrator.migrate(db, with: [Self.m1, Self.m2], now: Self.t1)
            }
            let before = try fileBytes(path)
            try withConnection(path) { db throws in
                #expect(try Migrator.migrate(db, with: [Self.m1, Self.m2], now: Self.t2) == [])
                #expect(try records(db).map(\.appliedAt) == [Self.t1, Self.t1])
                #expect(try db.query("SELECT name FROM jobs") { $0.string(0) } == ["seed"], "migration 1 did not run twice")
            }
            #expect(try fileBytes(path) == before)
        }
    }

    @Test func addingAMigrationAppliesOnlyTheNewOne() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("rota.db")
            try withConnection(path, mode: .readWriteCreate) { db throws in
                #expect(try Migrator.migrate(db, with: [Self.m1], now: Self.t1) == [1])
            }
            try withConnection(path) { db throws in
                #expect(try Migrator.migrate(db, with: [Self.m1, Self.m2], now: Self.t2) == [2])
                #expect(try records(db) == [
                    Record(version: 1, name: "initial", checksum: Self.m1.checksum, appliedAt: Self.t1),
                    Record(version: 2, name: "notes", checksum: Self.m2.checksum, appliedAt: Self.t2),
                ])
                #expect(try db.scalarInt("SELECT count(*) FROM jobs") == 1)
            }
        }
    }

    @Test func migrationsListedOutOfOrderAreAppliedInVersionOrder() throws {
        try withDatabase { db, _ throws in
            // m2 references jobs, and m3 alters it: both need m1 first.
            #expect(try Migrator.migrate(db, with: [Self.m3, Self.m1, Self.m2], now: Self.t1) == [1, 2, 3])
            #expect(try records(db).map(\.version) == [1, 2, 3])
            #expect(try Migrator.status(of: db, against: [Self.m3, Self.m1, Self.m2]).knownVersion == 3)
        }
    }

    @Test func aDatabaseMigratedByAnotherConnectionIsNotMigratedAgain() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("rota.db")
            let first = try Connection(path: path, options: testOptions())
            let second = try Connection(path: path, options: testOptions(mode: .readWrite))
            #expect(try Migrator.status(of: second, against: [Self.m1, Self.m2]).pending == [1, 2])
            #expect(try Migrator.migrate(first, with: [Self.m1, Self.m2], now: Self.t1) == [1, 2])
            #expect(try Migrator.migrate(second, with: [Self.m1, Self.m2], now: Self.t2) == [])
            #expect(try records(second).map(\.appliedAt) == [Self.t1, Self.t1])
        }
    }

    @Test func anEmptyMigrationListLeavesAnEmptyDatabaseEmpty() throws {
        try withDatabase { db, _ throws in
            #expect(try Migrator.migrate(db, with: [], now: Self.t1) == [])
            #expect(try tableNames(db) == [])
        }
    }

    // MARK: Failing migrations

    @Test func aFailingMigrationIsRolledBackEntirelyAndNotRecorded() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("rota.db")
            // Creates a table, then fails (jobs exists already): the first table must not survive.
            let broken = Migration(version: 2, name: "notes", sql: """
                CREATE TABLE notes (body TEXT);
                INSERT INTO jobs(name) VALUES ('added by 2');
                CREATE TABLE jobs (other TEXT);
                """)
            try withConnection(path, mode: .readWriteCreate) { db throws in
                let error = #expect(throws: SQLiteError.self) {
                    try Migrator.migrate(db, with: [Self.m1, broken], now: Self.t1)
                }
                #expect(error?.message == "table jobs already exists")
                #expect(error?.sql == broken.sql)
                #expect(db.isAutocommit)
                #expect(try tableNames(db) == ["jobs", "rota_migrations"])
                #expect(try records(db).map(\.version) == [1], "migration 1 stays applied; 2 is not recorded")
                #expect(try db.query("SELECT name FROM jobs") { $0.string(0) } == ["seed"])
            }
            // Once fixed, the step applies.
            try withConnection(path) { db throws in
                #expect(try Migrator.migrate(db, with: [Self.m1, Self.m2], now: Self.t2) == [2])
            }
        }
    }

    /// A step that rebuilds a parent table (new table, copy, drop, rename) keeps the child rows: with foreign
    /// keys on, the drop would delete them (ON DELETE CASCADE), so the migrator runs steps with keys off.
    @Test func rebuildingAParentTableKeepsItsChildRowsAndForeignKeysStayOn() throws {
        try withDatabase { db, _ throws in
            try db.execute("PRAGMA foreign_keys = ON")
            try Migrator.migrate(db, with: [Self.m1, Self.cascade], now: Self.t1)
            try db.execute("INSERT INTO kids(job, body) VALUES (1, 'kept')")
            let applied = try Migrator.migrate(db, with: [Self.m1, Self.cascade, Self.rebuild], now: Self.t2)
            #expect(applied == [3])
            #expect(try db.query("SELECT body FROM kids") { $0.string(0) } == ["kept"])
            #expect(try db.scalarInt("PRAGMA foreign_keys") == 1, "the caller's setting comes back")
            #expect(try db.query("SELECT sql FROM sqlite_schema WHERE name = 'jobs'") { $0.string(0) }.first?.contains("length(name) > 0") == true)
        }
    }

    /// Each step checks the foreign keys before it commits: one that would leave a dangling reference is
    /// rolled back, and says which rows.
    @Test func aStepLeavingADanglingForeignKeyIsRolledBackAndNamesTheRows() throws {
        try withDatabase { db, _ throws in
            try db.execute("PRAGMA foreign_keys = ON")
            try Migrator.migrate(db, with: [Self.m1, Self.cascade], now: Self.t1)
            let orphan = Migration(version: 3, name: "orphan", sql: "INSERT INTO kids(job, body) VALUES (42, 'orphan');")
            var caught: MigrationError?
            do { try Migrator.migrate(db, with: [Self.m1, Self.cascade, orphan]) } catch let error as MigrationError { caught = error }
            #expect(caught?.code == .foreignKeyViolation)
            #expect(caught?.message.contains("0003_orphan") == true, "\(String(describing: caught))")
            #expect(caught?.message.contains("kids -> jobs: 1") == true, "\(String(describing: caught))")
            #expect(caught?.message.contains("that step was rolled back") == true)
            #expect(try db.scalarInt("SELECT count(*) FROM kids") == 0)
            #expect(try records(db).map(\.version) == [1, 2])
            #expect(try db.scalarInt("PRAGMA foreign_keys") == 1)
        }
    }

    /// A dangling reference already in the file (a row deleted by hand with foreign keys off) is not the
    /// step's doing: the step applies, and the row is left as it was.
    @Test func aDanglingReferenceAlreadyThereDoesNotBlockAStep() throws {
        try withDatabase { db, _ throws in
            try db.execute("PRAGMA foreign_keys = ON")
            try Migrator.migrate(db, with: [Self.m1, Self.cascade], now: Self.t1)
            try db.execute("PRAGMA foreign_keys = OFF")
            try db.execute("INSERT INTO kids(job, body) VALUES (42, 'orphaned by hand')")
            try db.execute("PRAGMA foreign_keys = ON")
            #expect(try Migrator.migrate(db, with: [Self.m1, Self.cascade, Self.rebuild], now: Self.t2) == [3])
            #expect(try db.query("SELECT body FROM kids") { $0.string(0) } == ["orphaned by hand"])
        }
    }

    static let cascade = Migration(version: 2, name: "kids", sql: """
        CREATE TABLE kids (job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, body TEXT);
        """)
    static let rebuild = Migration(version: 3, name: "rebuild", sql: """
        CREATE TABLE jobs_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL CHECK (length(name) > 0));
        INSERT INTO jobs_new SELECT id, name FROM jobs;
        DROP TABLE jobs;
        ALTER TABLE jobs_new RENAME TO jobs;
        """)

    @Test func aFailingFirstMigrationLeavesAFreshDatabaseEmpty() throws {
        try withDatabase { db, _ throws in
            let broken = Migration(version: 1, name: "initial", sql: """
                CREATE TABLE jobs (id INTEGER PRIMARY KEY);
                INSERT INTO nowhere VALUES (1);
                """)
            let error = #expect(throws: SQLiteError.self) {
                try Migrator.migrate(db, with: [broken, Self.m2], now: Self.t1)
            }
            #expect(error?.message == "no such table: nowhere")
            #expect(try tableNames(db) == [], "no jobs table, and no rota_migrations table either")
            // Still a fresh database, not a foreign one: the fixed migrations apply.
            #expect(try Migrator.migrate(db, with: [Self.m1, Self.m2], now: Self.t1) == [1, 2])
        }
    }

    // MARK: Refusals

    @Test func aChangedAppliedMigrationIsRefusedAndTheDatabaseIsUnchanged() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("rota.db")
            try withConnection(path, mode: .readWriteCreate) { db throws in
                try Migrator.migrate(db, with: [Self.m1], now: Self.t1)
            }
            let edited = Migration(version: 1, name: "initial", sql: Self.m1.sql + "\n-- a harmless comment")
            try expectRefusal(.changedMigration, at: path,
                              messageContains: ["0001_initial", Self.m1.checksum, edited.checksum, "Nothing was changed"]) { db throws in
                // Even with a new migration 2 to apply, nothing runs.
                try Migrator.migrate(db, with: [edited, Self.m2], now: Self.t2)
            }
            try expectRefusal(.changedMigration, at: path, messageContains: ["0001_initial"]) { db throws in
                _ = try Migrator.status(of: db, against: [edited])
            }
        }
    }

    @Test func anAppliedMigrationThisBinaryLacksIsRefused() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("rota.db")
            try withConnection(path, mode: .readWriteCreate) { db throws in
                try Migrator.migrate(db, with: [Self.m1, Self.m2], now: Self.t1)
            }
            try expectRefusal(.changedMigration, at: path, messageContains: ["migration 2 (notes)", "does not have"]) { db throws in
                try Migrator.migrate(db, with: [Self.m1, Self.m3], now: Self.t2)
            }
        }
    }

    @Test func aDatabaseNewerThanTheBinaryIsRefusedAndUnchanged() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("rota.db")
            try withConnection(path, mode: .readWriteCreate) { db throws in
                try Migrator.migrate(db, with: [Self.m1, Self.m2, Self.m3], now: Self.t1)
            }
            try expectRefusal(.newerSchema, at: path, messageContains: ["schema version 3", "knows (2)", "Nothing was changed"]) { db throws in
                try Migrator.migrate(db, with: [Self.m1, Self.m2], now: Self.t2)
            }
            try expectRefusal(.newerSchema, at: path, messageContains: ["schema version 3"]) { db throws in
                _ = try Migrator.status(of: db, against: [Self.m1])
            }
        }
    }

    @Test func aNonRotaDatabaseWithTablesIsRefusedAndUnchanged() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("someone-elses.db")
            try withConnection(path, mode: .readWriteCreate) { db throws in
                try db.execute("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers(name) VALUES ('Ada')")
            }
            try expectRefusal(.foreignDatabase, at: path, messageContains: [path, "not a Rota database", "1 table and"]) { db throws in
                try Migrator.migrate(db, with: [Self.m1, Self.m2], now: Self.t1)
            }
            try withConnection(path) { db throws in
                #expect(try tableNames(db) == ["customers"])
            }
        }
    }

    @Test func anUpToDateDatabaseOpenedReadOnlyPassesWithoutWriting() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("rota.db")
            try withConnection(path, mode: .readWriteCreate) { db throws in
                try Migrator.migrate(db, with: [Self.m1, Self.m2], now: Self.t1)
            }
            let before = try fileBytes(path)
            try withConnection(path, mode: .readOnly) { db throws in
                #expect(try Migrator.migrate(db, with: [Self.m1, Self.m2], now: Self.t2) == [])
            }
            #expect(try fileBytes(path) == before)
        }
    }

    @Test func aDatabaseNeedingMigrationOpenedReadOnlyIsRefusedAndUnchanged() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("rota.db")
            try withConnection(path, mode: .readWriteCreate) { db throws in
                try Migrator.migrate(db, with: [Self.m1], now: Self.t1)
            }
            let bytesBefore = try fileBytes(path)
            try withConnection(path, mode: .readOnly) { db throws in
                let error = #expect(throws: MigrationError.self) {
                    try Migrator.migrate(db, with: [Self.m1, Self.m2, Self.m3], now: Self.t2)
                }
                #expect(error?.code == .needsMigration)
                #expect(error?.message.contains("needs migrations 2, 3") == true)
                #expect(error?.message.contains("read-only") == true)
            }
            #expect(try fileBytes(path) == bytesBefore)
        }
    }

    // MARK: Migration

    @Test func checksumIsFNV1a64OfTheSQLInLowercaseHex() {
        // Published FNV-1a 64-bit test vectors: the checksum must never change between releases.
        #expect(Migration(version: 1, name: "x", sql: "").checksum == "cbf29ce484222325")
        #expect(Migration(version: 1, name: "x", sql: "a").checksum == "af63dc4c8601ec8c")
        #expect(Migration(version: 1, name: "x", sql: "foobar").checksum == "85944171f73967e8")
    }

    @Test func checksumIsStableForTheSameSQL() {
        let a = Migration(version: 1, name: "initial", sql: Self.m1.sql)
        let b = Migration(version: 7, name: "renamed", sql: String(Self.m1.sql))
        #expect(a.checksum == Self.m1.checksum)
        #expect(b.checksum == Self.m1.checksum, "the checksum covers the SQL only")
        #expect(Self.m1.checksum.count == 16)
        #expect(Self.m1.checksum.allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test(arguments: [
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\nINSERT INTO jobs(name) VALUES ('seeD');",
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\nINSERT INTO jobs(name) VALUES ('seed');\n",
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT NOT NULL); INSERT INTO jobs(name) VALUES ('seed');",
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\r\nINSERT INTO jobs(name) VALUES ('seed');",
    ])
    func checksumChangesWhenTheSQLChangesAtAll(_ sql: String) {
        #expect(Migration(version: 1, name: "initial", sql: sql).checksum != Self.m1.checksum)
    }

    @Test func checksumsAreZeroPaddedToSixteenDigits() {
        // Some checksums have leading zero nibbles; they keep all 16 digits.
        let checksums = (0..<5000).map { Migration(version: 1, name: "x", sql: "step \($0)").checksum }
        #expect(checksums.allSatisfy { $0.count == 16 })
        #expect(checksums.contains { $0.hasPrefix("0") })
    }

    @Test(arguments: [(1, "initial", "0001_initial"), (42, "add_index", "0042_add_index"), (12345, "big", "12345_big")])
    func labelIsTheZeroPaddedFileName(_ version: Int, _ name: String, _ label: String) {
        #expect(Migration(version: version, name: name, sql: "").label == label)
    }
}
