import Foundation
import RotaSQLite
import Testing

/// `SQLiteError`: the codes, the classification, the description, and what real failures carry.
@Suite struct SQLiteErrorTests {
    // MARK: Codes and classification

    @Test func thePrimaryCodeIsTheLowByteOfTheExtendedCode() {
        let error = SQLiteError(extendedCode: Code.constraintUnique, message: "m")
        #expect(error.code == Code.constraint)
        #expect(error.codeName == "SQLITE_CONSTRAINT")
        #expect(SQLiteError(extendedCode: Code.busySnapshot, message: "m").code == Code.busy)
        #expect(SQLiteError(extendedCode: Code.ioErrRead, message: "m").code == Code.ioErr)
    }

    @Test(arguments: [Code.busy, Code.busySnapshot, Code.locked])
    func busyAndLockedAreBusyAndRetryable(_ code: Int32) {
        let error = SQLiteError(extendedCode: code, message: "m")
        #expect(error.isBusy)
        #expect(error.isRetryable)
        #expect(!error.isConstraint)
        #expect(!error.isCorrupt)
    }

    @Test(arguments: [Code.full, Code.ioErr, Code.ioErrRead])
    func fullAndIOErrorsAreRetryableButNotBusy(_ code: Int32) {
        let error = SQLiteError(extendedCode: code, message: "m")
        #expect(error.isRetryable)
        #expect(!error.isBusy)
        #expect(error.isFull == (code == Code.full))
    }

    /// A write that fails for want of room is "full" whatever SQLite calls it: `SQLITE_FULL`, or an I/O
    /// error (`SQLITE_IOERR_WRITE`, 778) whose system error is ENOSPC, EFBIG (past `ulimit -f`) or EDQUOT.
    @Test(arguments: [(Int32(28), true), (27, true), (122, true), (5 /* EIO */, false), (0, false)])
    func anIOErrorForWantOfRoomIsFull(_ systemErrno: Int32, _ full: Bool) {
        let error = SQLiteError(extendedCode: Code.ioErr | (3 << 8), message: "disk I/O error", sql: "COMMIT", systemErrno: systemErrno)
        #expect(error.isFull == full)
        #expect(error.isRetryable)
        #expect(!error.isBusy)
    }

    @Test func theDescriptionCarriesTheSystemError() {
        let error = SQLiteError(extendedCode: 778, message: "disk I/O error", sql: "COMMIT", systemErrno: 27)
        #expect(error.description == "SQLITE_IOERR (778): disk I/O error (errno 27: File too large) — in: COMMIT")
    }

    @Test(arguments: [Code.corrupt, Code.corruptVTab, Code.notADatabase])
    func corruptAndNotADatabaseAreCorruptAndNotRetryable(_ code: Int32) {
        let error = SQLiteError(extendedCode: code, message: "m")
        #expect(error.isCorrupt)
        #expect(!error.isRetryable)
    }

    @Test(arguments: [Code.constraint, Code.constraintUnique, Code.constraintPrimaryKey, Code.constraintNotNull,
                      Code.constraintCheck, Code.constraintForeignKey])
    func everyConstraintCodeIsAConstraintAndNotRetryable(_ code: Int32) {
        let error = SQLiteError(extendedCode: code, message: "m")
        #expect(error.isConstraint)
        #expect(!error.isRetryable)
        #expect(!error.isBusy)
    }

    @Test(arguments: [Code.error, Code.readOnly, Code.cantOpen, Code.range])
    func otherCodesAreNeitherRetryableNorClassified(_ code: Int32) {
        let error = SQLiteError(extendedCode: code, message: "m")
        #expect(!error.isRetryable)
        #expect(!error.isBusy)
        #expect(!error.isConstraint)
        #expect(!error.isCorrupt)
        #expect(!error.isFull)
    }

    @Test(arguments: [
        (Code.error, "SQLITE_ERROR"), (Code.busy, "SQLITE_BUSY"), (Code.locked, "SQLITE_LOCKED"),
        (Code.readOnly, "SQLITE_READONLY"), (Code.ioErr, "SQLITE_IOERR"), (Code.corrupt, "SQLITE_CORRUPT"),
        (Code.full, "SQLITE_FULL"), (Code.cantOpen, "SQLITE_CANTOPEN"), (Code.constraint, "SQLITE_CONSTRAINT"),
        (Code.range, "SQLITE_RANGE"), (Code.notADatabase, "SQLITE_NOTADB"), (Code.busySnapshot, "SQLITE_BUSY"),
        (Code.constraintUnique, "SQLITE_CONSTRAINT"), (99, "SQLITE_99"),
    ])
    func codeNameIsTheSymbolicNameOfThePrimaryCode(_ code: Int32, _ name: String) {
        #expect(SQLiteError(extendedCode: code, message: "m").codeName == name)
    }

    // MARK: Description

    @Test func descriptionNamesTheCodeTheMessageAndTheSQL() {
        let error = SQLiteError(extendedCode: Code.constraintUnique, message: "UNIQUE constraint failed: t.x",
                                sql: "INSERT INTO t(x) VALUES (?)")
        #expect(error.description == "SQLITE_CONSTRAINT (2067): UNIQUE constraint failed: t.x — in: INSERT INTO t(x) VALUES (?)")
        #expect("\(error)" == error.description)
    }

    @Test func descriptionWithoutSQLOmitsIt() {
        let error = SQLiteError(extendedCode: Code.busy, message: "database is locked")
        #expect(error.sql == nil)
        #expect(error.description == "SQLITE_BUSY (5): database is locked")
    }

    @Test func errorsWithTheSamePartsAreEqual() {
        #expect(SQLiteError(extendedCode: 1, message: "a", sql: "s") == SQLiteError(extendedCode: 1, message: "a", sql: "s"))
        #expect(SQLiteError(extendedCode: 1, message: "a", sql: "s") != SQLiteError(extendedCode: 1, message: "a"))
        #expect(SQLiteError(extendedCode: 1, message: "a") != SQLiteError(extendedCode: 2, message: "a"))
    }

    // MARK: What real failures carry

    @Test func aSyntaxErrorCarriesCodeMessageAndSQL() throws {
        try withDatabase { db, _ throws in
            let sql = "SELEC name FROM t"
            let error = #expect(throws: SQLiteError.self) { try db.cached(sql) }
            #expect(error?.extendedCode == Code.error)
            #expect(error?.message == "near \"SELEC\": syntax error")
            #expect(error?.sql == sql)
            #expect(error?.description.contains("SQLITE_ERROR (1): near \"SELEC\": syntax error — in: \(sql)") == true)
        }
    }

    @Test func aMissingTableCarriesItsName() throws {
        try withDatabase { db, _ throws in
            let error = #expect(throws: SQLiteError.self) { try db.run("INSERT INTO nowhere(x) VALUES (1)") }
            #expect(error?.code == Code.error)
            #expect(error?.message == "no such table: nowhere")
        }
    }

    /// A table with one constraint of each kind, and a statement breaking each.
    static let constraintCases: [(label: String, sql: String, extendedCode: Int32, message: String)] = [
        ("unique", "INSERT INTO t(id, name, n) VALUES (2, 'taken', 1)", Code.constraintUnique, "UNIQUE constraint failed: t.name"),
        ("primary key", "INSERT INTO t(id, name, n) VALUES (1, 'other', 1)", Code.constraintPrimaryKey, "UNIQUE constraint failed: t.id"),
        ("not null", "INSERT INTO t(id, name, n) VALUES (3, NULL, 1)", Code.constraintNotNull, "NOT NULL constraint failed: t.name"),
        ("check", "INSERT INTO t(id, name, n) VALUES (4, 'neg', -1)", Code.constraintCheck, "CHECK constraint failed: n >= 0"),
        ("foreign key", "INSERT INTO c(t_id) VALUES (99)", Code.constraintForeignKey, "FOREIGN KEY constraint failed"),
    ]

    @Test(arguments: constraintCases.map(\.label))
    func aConstraintViolationCarriesItsExtendedCodeAndSQLitesMessage(_ label: String) throws {
        let c = try #require(Self.constraintCases.first { $0.label == label })
        try withDatabase { db, _ throws in
            try db.execute("""
                CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, n INTEGER CHECK (n >= 0));
                CREATE TABLE c(t_id INTEGER REFERENCES t(id));
                INSERT INTO t(id, name, n) VALUES (1, 'taken', 0);
                """)
            let error = #expect(throws: SQLiteError.self) { try db.run(c.sql) }
            #expect(error?.extendedCode == c.extendedCode)
            #expect(error?.code == Code.constraint)
            #expect(error?.isConstraint == true)
            #expect(error?.isRetryable == false)
            #expect(error?.message == c.message)
            #expect(error?.sql == c.sql)
        }
    }

    @Test func aUniqueViolationHasExtendedCode2067() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(name TEXT UNIQUE)")
            try db.run("INSERT INTO t(name) VALUES (?)", ["x"])
            let error = #expect(throws: SQLiteError.self) { try db.run("INSERT INTO t(name) VALUES (?)", ["x"]) }
            #expect(error?.extendedCode == 2067)
            #expect(error?.isConstraint == true)
        }
    }
}
