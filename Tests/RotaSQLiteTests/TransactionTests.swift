import Foundation
import RotaSQLite
import Testing

/// `Connection.transaction`: commit on return, rollback on throw, savepoints when nested, lock kinds.
@Suite struct TransactionTests {
    /// The values in `t`, in order.
    private func values(_ db: Connection) throws -> [String] {
        try db.query("SELECT v FROM t ORDER BY rowid") { $0.string(0) }
    }

    /// A database with an empty table `t(v)`, plus a second connection to the same file.
    private func withTable(_ body: (Connection, Connection) throws -> Void) throws {
        try withDatabase { db, dir throws in
            try db.execute("CREATE TABLE t(v TEXT)")
            let other = try Connection(path: dir.path("test.db"), options: testOptions(mode: .readWrite))
            try body(db, other)
        }
    }

    @Test func aTransactionThatReturnsIsCommittedAndVisibleToOtherConnections() throws {
        try withTable { db, other throws in
            try db.transaction(.immediate) {
                try db.run("INSERT INTO t(v) VALUES (?)", ["a"])
                try db.run("INSERT INTO t(v) VALUES (?)", ["b"])
                #expect(!db.isAutocommit)
            }
            #expect(db.isAutocommit)
            #expect(try values(other) == ["a", "b"])
        }
    }

    @Test func aTransactionReturnsTheBodysValue() throws {
        try withTable { db, _ throws in
            let id = try db.transaction {
                try db.run("INSERT INTO t(v) VALUES ('x')")
                return db.lastInsertRowID
            }
            #expect(id == 1)
        }
    }

    @Test func aTransactionThatThrowsIsRolledBackAndRethrowsTheBodysError() throws {
        try withTable { db, other throws in
            try db.run("INSERT INTO t(v) VALUES ('before')")
            #expect(throws: Boom(tag: "from the body")) {
                try db.transaction(.immediate) {
                    try db.run("INSERT INTO t(v) VALUES ('a')")
                    try db.run("UPDATE t SET v = 'changed'")
                    throw Boom(tag: "from the body")
                }
            }
            #expect(db.isAutocommit)
            #expect(try values(db) == ["before"])
            #expect(try values(other) == ["before"])
        }
    }

    @Test func aFailingStatementInTheBodyRollsBackTheEarlierOnesAndIsRethrown() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v TEXT UNIQUE)")
            try db.run("INSERT INTO t(v) VALUES ('a')")
            let error = #expect(throws: SQLiteError.self) {
                try db.transaction {
                    try db.run("INSERT INTO t(v) VALUES ('b')")
                    try db.run("INSERT INTO t(v) VALUES ('a')")
                }
            }
            #expect(error?.extendedCode == Code.constraintUnique)
            #expect(db.isAutocommit)
            #expect(try values(db) == ["a"])
        }
    }

    @Test func aFailedCommitIsRolledBackAndRethrown() throws {
        try withDatabase { db, _ throws in
            // A deferred foreign key is only checked at COMMIT, so COMMIT itself fails.
            try db.execute("""
                CREATE TABLE parent(id INTEGER PRIMARY KEY);
                CREATE TABLE child(p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
                """)
            let error = #expect(throws: SQLiteError.self) {
                try db.transaction {
                    try db.run("INSERT INTO child(p) VALUES (42)")
                }
            }
            #expect(error?.extendedCode == Code.constraintForeignKey)
            #expect(error?.sql == "COMMIT")
            #expect(db.isAutocommit)
            #expect(try db.scalarInt("SELECT count(*) FROM child") == 0)
            // The connection is usable: the next transaction commits.
            try db.transaction {
                try db.run("INSERT INTO parent(id) VALUES (42)")
                try db.run("INSERT INTO child(p) VALUES (42)")
            }
            #expect(try db.scalarInt("SELECT count(*) FROM child") == 1)
        }
    }

    @Test func theConnectionIsUsableAfterARolledBackTransaction() throws {
        try withTable { db, _ throws in
            #expect(throws: Boom.self) {
                try db.transaction { try db.run("INSERT INTO t(v) VALUES ('lost')"); throw Boom() }
            }
            try db.transaction { try db.run("INSERT INTO t(v) VALUES ('kept')") }
            #expect(try values(db) == ["kept"])
        }
    }

    // MARK: Nesting

    @Test func aNestedTransactionThatThrowsRollsBackOnlyItsOwnWorkWhenCaught() throws {
        try withTable { db, other throws in
            try db.transaction {
                try db.run("INSERT INTO t(v) VALUES ('outer 1')")
                #expect(throws: Boom(tag: "inner")) {
                    try db.transaction {
                        try db.run("INSERT INTO t(v) VALUES ('inner')")
                        throw Boom(tag: "inner")
                    }
                }
                #expect(!db.isAutocommit, "the outer transaction is still open")
                try db.run("INSERT INTO t(v) VALUES ('outer 2')")
            }
            #expect(try values(other) == ["outer 1", "outer 2"])
        }
    }

    @Test func aNestedTransactionThatReturnsIsKeptWhenTheOuterCommits() throws {
        try withTable { db, other throws in
            try db.transaction {
                try db.run("INSERT INTO t(v) VALUES ('outer')")
                let inner = try db.transaction {
                    try db.run("INSERT INTO t(v) VALUES ('inner')")
                    return 7
                }
                #expect(inner == 7)
                #expect(!db.isAutocommit)
                #expect(try values(other) == [], "nothing is visible before the outer commit")
            }
            #expect(try values(other) == ["outer", "inner"])
        }
    }

    @Test func anOuterThrowRollsBackACompletedNestedTransactionToo() throws {
        try withTable { db, _ throws in
            #expect(throws: Boom.self) {
                try db.transaction {
                    try db.transaction { try db.run("INSERT INTO t(v) VALUES ('inner')") }
                    throw Boom()
                }
            }
            #expect(try values(db) == [])
            #expect(db.isAutocommit)
        }
    }

    @Test func anUncaughtNestedErrorRollsBackEverything() throws {
        try withTable { db, _ throws in
            #expect(throws: Boom(tag: "deep")) {
                try db.transaction {
                    try db.run("INSERT INTO t(v) VALUES ('1')")
                    try db.transaction {
                        try db.run("INSERT INTO t(v) VALUES ('2')")
                        try db.transaction {
                            try db.run("INSERT INTO t(v) VALUES ('3')")
                            throw Boom(tag: "deep")
                        }
                    }
                }
            }
            #expect(try values(db) == [])
            #expect(db.isAutocommit)
        }
    }

    @Test func threeLevelsOfNestingEachRollBackIndependently() throws {
        try withTable { db, _ throws in
            try db.transaction {
                try db.run("INSERT INTO t(v) VALUES ('1')")
                try db.transaction {
                    try db.run("INSERT INTO t(v) VALUES ('2')")
                    #expect(throws: Boom.self) {
                        try db.transaction {
                            try db.run("INSERT INTO t(v) VALUES ('3')")
                            throw Boom()
                        }
                    }
                    try db.run("INSERT INTO t(v) VALUES ('2b')")
                }
                // A second nested transaction after the first one finished works too.
                try db.transaction { try db.run("INSERT INTO t(v) VALUES ('4')") }
            }
            #expect(try values(db) == ["1", "2", "2b", "4"])
        }
    }

    @Test func aTransactionInsideAManuallyOpenedOneUsesASavepoint() throws {
        try withTable { db, _ throws in
            try db.execute("BEGIN")
            try db.run("INSERT INTO t(v) VALUES ('manual')")
            #expect(throws: Boom.self) {
                try db.transaction { try db.run("INSERT INTO t(v) VALUES ('nested')"); throw Boom() }
            }
            #expect(!db.isAutocommit)
            try db.execute("COMMIT")
            #expect(try values(db) == ["manual"])
        }
    }

    // MARK: Lock kinds

    @Test func anImmediateTransactionHoldsTheWriteLockFromTheStart() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("kinds.db")
            let db = try Connection(path: path, options: testOptions())
            try db.enableWAL()
            try db.execute("CREATE TABLE t(v)")
            let other = try Connection(path: path, options: testOptions(mode: .readWrite, busyTimeout: .zero))
            try db.transaction(.immediate) {
                // Nothing written yet, but the lock is taken: another writer is refused.
                let error = #expect(throws: SQLiteError.self) { try other.run("INSERT INTO t(v) VALUES (1)") }
                #expect(error?.isBusy == true)
            }
            try other.run("INSERT INTO t(v) VALUES (1)")
        }
    }

    @Test func aDeferredTransactionTakesNoWriteLockUntilItWrites() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("kinds.db")
            let db = try Connection(path: path, options: testOptions())
            try db.enableWAL()
            try db.execute("CREATE TABLE t(v)")
            let other = try Connection(path: path, options: testOptions(mode: .readWrite, busyTimeout: .zero))
            let count = try db.transaction(.deferred) {
                try other.run("INSERT INTO t(v) VALUES (1)")
                return try db.scalarInt("SELECT count(*) FROM t")
            }
            #expect(count == 1)
        }
    }

    @Test func anExclusiveTransactionCommits() throws {
        try withTable { db, other throws in
            try db.transaction(.exclusive) { try db.run("INSERT INTO t(v) VALUES ('x')") }
            #expect(try values(other) == ["x"])
        }
    }
}
