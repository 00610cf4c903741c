import Foundation
import RotaSQLite
import Testing
#if canImport(Glibc)
import Glibc
import Synchronization
#endif

/// Opening files (good, missing, foreign, damaged, read-only), pragmas, the statement cache, busy locks.
@Suite struct ConnectionTests {
    // MARK: Opening

    @Test func readWriteCreateCreatesTheFile() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("new.db")
            #expect(!FileManager.default.fileExists(atPath: path))
            let db = try Connection(path: path, options: testOptions())
            #expect(FileManager.default.fileExists(atPath: path))
            #expect(db.path == path)
            #expect(try tableNames(db) == [])
            try db.execute("CREATE TABLE t(x)")
            #expect(try tableNames(db) == ["t"])
        }
    }

    @Test func dataWrittenByOneConnectionIsReadByTheNextAfterReopening() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("persist.db")
            do {
                let db = try Connection(path: path, options: testOptions())
                try db.execute("CREATE TABLE t(x)")
                try db.run("INSERT INTO t(x) VALUES (?)", ["kept"])
            }
            let reopened = try Connection(path: path, options: testOptions(mode: .readWrite))
            #expect(try reopened.query("SELECT x FROM t") { $0.string(0) } == ["kept"])
        }
    }

    @Test(arguments: [Connection.Mode.readOnly, .readWrite])
    func openingAMissingFileWithoutCreateFailsClearlyAndCreatesNothing(_ mode: Connection.Mode) throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("missing.db")
            let error = #expect(throws: SQLiteError.self) {
                try Connection(path: path, options: testOptions(mode: mode))
            }
            #expect(error?.code == Code.cantOpen)
            #expect(error?.message.contains(path) == true)
            #expect(try dir.fileNames() == [])
        }
    }

    @Test func openingInAMissingDirectoryFailsWithCantOpenNamingThePath() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("no/such/dir/x.db")
            let error = #expect(throws: SQLiteError.self) {
                try Connection(path: path, options: testOptions())
            }
            #expect(error?.code == Code.cantOpen)
            #expect(error?.message.contains("cannot open \(path)") == true)
            #expect(try dir.fileNames() == [])
        }
    }

    static let foreignFiles: [(name: String, bytes: [UInt8])] = [
        ("text", Array(String(repeating: "This is a README, not a database.\n", count: 200).utf8)),
        ("short text", Array("hello\n".utf8)),
        ("random bytes", (0..<8192).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 7) }),
        ("gzip-looking", [0x1f, 0x8b, 0x08, 0x00] + [UInt8](repeating: 0x42, count: 4092)),
    ]

    @Test(arguments: foreignFiles.map(\.name), [Connection.Mode.readWriteCreate, .readWrite, .readOnly])
    func aFileThatIsNotADatabaseIsRefusedAsCorruptAndLeftUnchanged(_ name: String, _ mode: Connection.Mode) throws {
        let bytes = try #require(Self.foreignFiles.first { $0.name == name }).bytes
        try withTemporaryDirectory { dir throws in
            let path = dir.path("foreign.db")
            try writeFile(path, Data(bytes))
            let error = #expect(throws: SQLiteError.self) {
                try Connection(path: path, options: testOptions(mode: mode))
            }
            #expect(error?.isCorrupt == true)
            #expect(error?.extendedCode == Code.notADatabase)
            #expect(error?.message.contains("\(path) is not a SQLite database") == true)
            #expect(try fileBytes(path) == Data(bytes))
            #expect(try dir.fileNames() == ["foreign.db"])
        }
    }

    @Test func aFileThatIsNotADatabaseIsRefusedEvenWithoutQuickCheck() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("foreign.db")
            let bytes = Data("not a database at all".utf8)
            try writeFile(path, bytes)
            let error = #expect(throws: SQLiteError.self) {
                try Connection(path: path, options: testOptions(quickCheck: false))
            }
            #expect(error?.isCorrupt == true)
            #expect(try fileBytes(path) == bytes)
        }
    }

    /// Makes a database with one table spread over many pages, and returns its page size and count.
    private func makeDatabaseWithData(at path: String) throws -> (pageSize: Int, pageCount: Int) {
        let db = try Connection(path: path, options: testOptions())
        try db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        try db.transaction {
            for i in 0..<600 {
                try db.run("INSERT INTO t(id, body) VALUES (?, ?)",
                           [.integer(Int64(i)), .text(String(repeating: "row \(i) ", count: 30))])
            }
        }
        let pageSize = Int(try #require(try db.scalarInt("PRAGMA page_size")))
        let pageCount = Int(try #require(try db.scalarInt("PRAGMA page_count")))
        return (pageSize, pageCount)
    }

    /// Overwrites one page in the middle of the file with garbage and returns the damaged bytes.
    private func damageMiddlePage(of path: String, pageSize: Int, pageCount: Int) throws -> Data {
        var bytes = try fileBytes(path)
        #expect(bytes.count == pageSize * pageCount)
        let page = pageCount / 2  // 0-based: well past page 1 (the header and schema)
        let garbage = (0..<pageSize).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 0xA5) }
        bytes.replaceSubrange(page * pageSize..<(page + 1) * pageSize, with: garbage)
        try writeFile(path, bytes)
        return bytes
    }

    @Test func aDamagedDatabaseFailsItsQuickCheckAtOpenAndIsLeftUnchanged() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("damaged.db")
            let (pageSize, pageCount) = try makeDatabaseWithData(at: path)
            #expect(pageCount > 10)
            let damaged = try damageMiddlePage(of: path, pageSize: pageSize, pageCount: pageCount)

            for mode in [Connection.Mode.readWriteCreate, .readWrite, .readOnly] {
                let error = #expect(throws: SQLiteError.self) {
                    try Connection(path: path, options: testOptions(mode: mode))
                }
                #expect(error?.isCorrupt == true)
                #expect(error?.message.contains("\(path) failed its integrity check") == true)
                #expect(try fileBytes(path) == damaged)
            }
            #expect(try dir.fileNames() == ["damaged.db"])
        }
    }

    @Test func withoutQuickCheckADamagedDatabaseOpensButReadingTheDamageFailsAsCorrupt() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("damaged.db")
            let (pageSize, pageCount) = try makeDatabaseWithData(at: path)
            let damaged = try damageMiddlePage(of: path, pageSize: pageSize, pageCount: pageCount)
            let db = try Connection(path: path, options: testOptions(quickCheck: false))
            let error = #expect(throws: SQLiteError.self) {
                try db.query("SELECT body FROM t ORDER BY id") { $0.string(0) }
            }
            #expect(error?.isCorrupt == true)
            #expect(try fileBytes(path) == damaged)
        }
    }

    @Test func aHealthyDatabasePassesTheQuickCheck() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("healthy.db")
            _ = try makeDatabaseWithData(at: path)
            let db = try Connection(path: path, options: testOptions(mode: .readWrite))
            #expect(try db.scalarInt("SELECT count(*) FROM t") == 600)
        }
    }

    @Test func readOnlyModeReadsButEveryWriteFailsWithReadOnlyAndTheFileIsUnchanged() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("ro.db")
            do {
                let db = try Connection(path: path, options: testOptions())
                try db.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
            }
            let before = try fileBytes(path)
            let db = try Connection(path: path, options: testOptions(mode: .readOnly))
            #expect(try db.scalarInt("SELECT x FROM t") == 1)

            let insert = #expect(throws: SQLiteError.self) { try db.run("INSERT INTO t(x) VALUES (2)") }
            #expect(insert?.code == Code.readOnly)
            #expect(insert?.message.contains("readonly") == true)
            let create = #expect(throws: SQLiteError.self) { try db.execute("CREATE TABLE u(y)") }
            #expect(create?.code == Code.readOnly)
            let transaction = #expect(throws: SQLiteError.self) {
                try db.transaction(.immediate) { try db.run("DELETE FROM t") }
            }
            #expect(transaction?.code == Code.readOnly)
            #expect(db.isAutocommit)

            #expect(try db.scalarInt("SELECT count(*) FROM t") == 1)
            #expect(try fileBytes(path) == before)
        }
    }

    @Test(.disabled(if: isRoot, "root writes through permission bits, so a 0444 file is writable"))
    func aReadOnlyFileOpenedForWritingIsRefusedAndLeftUnchanged() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("locked.db")
            do {
                let db = try Connection(path: path, options: testOptions())
                try db.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
            }
            let before = try fileBytes(path)
            try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: path)
            for mode in [Connection.Mode.readWriteCreate, .readWrite] {
                let error = #expect(throws: SQLiteError.self) {
                    try Connection(path: path, options: testOptions(mode: mode))
                }
                #expect(error?.code == Code.readOnly)
                #expect(error?.message.contains("\(path) is read-only") == true)
            }
            // Read-only mode still reads it.
            let reader = try Connection(path: path, options: testOptions(mode: .readOnly))
            #expect(try reader.scalarInt("SELECT x FROM t") == 1)
            #expect(try fileBytes(path) == before)
        }
    }

    @Test(.disabled(if: isRoot, "root writes through permission bits, so a 0555 directory is writable"))
    func aDatabaseInAReadOnlyDirectoryIsRefusedForWritingAndLeftUnchanged() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("in-ro-dir.db")
            do {
                let db = try Connection(path: path, options: testOptions())
                try db.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
            }
            let before = try fileBytes(path)
            try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: dir.url.path)
            defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.url.path) }

            // A new file cannot be created there.
            let create = #expect(throws: SQLiteError.self) {
                try Connection(path: dir.path("new.db"), options: testOptions())
            }
            #expect(create?.code == Code.cantOpen)

            // The existing file is writable, but SQLite could not create its journal next to it: refused at open,
            // naming the directory, rather than failing at the first write.
            for mode in [Connection.Mode.readWriteCreate, .readWrite] {
                let error = #expect(throws: SQLiteError.self) {
                    try Connection(path: path, options: testOptions(mode: mode))
                }
                #expect(error?.code == Code.readOnly)
                #expect(error?.extendedCode == Code.readOnlyDirectory)
                #expect(error?.message.contains("\(path) is in a read-only directory") == true)
            }
            // Read-only mode still reads it.
            let reader = try Connection(path: path, options: testOptions(mode: .readOnly))
            #expect(try reader.scalarInt("SELECT x FROM t") == 1)
            #expect(try fileBytes(path) == before)
            #expect(try dir.fileNames() == ["in-ro-dir.db"])
        }
    }

    // MARK: Pragmas

    @Test func enableWALSwitchesTheFileToWALForEveryConnection() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("wal.db")
            let db = try Connection(path: path, options: testOptions())
            #expect(try db.journalMode() == "delete")
            try db.enableWAL()
            #expect(try db.journalMode() == "wal")
            #expect(try db.queryFirst("PRAGMA journal_mode") { $0.string(0) } == "wal")
            let other = try Connection(path: path, options: testOptions(mode: .readWrite))
            #expect(try other.journalMode() == "wal")
        }
    }

    @Test func synchronousIsFullByDefault() throws {
        try withDatabase { db, _ throws in
            #expect(db.options.synchronous == .full)
            #expect(try db.scalarInt("PRAGMA synchronous") == 2)
        }
    }

    @Test func synchronousNormalIsAppliedWhenChosen() throws {
        try withDatabase(testOptions(synchronous: .normal)) { db, _ throws in
            #expect(try db.scalarInt("PRAGMA synchronous") == 1)
        }
    }

    @Test func theDefaultOptionsAreTheDurableOnes() {
        let options = Connection.Options()
        #expect(options.mode == .readWriteCreate)
        #expect(options.synchronous == .full)
        #expect(options.busyTimeout == .seconds(5))
        #expect(options.quickCheck)
        #expect(options.foreignKeys)
    }

    @Test(arguments: [(Duration.milliseconds(200), Int64(200)), (.seconds(5), 5000), (.seconds(1) + .milliseconds(500), 1500), (.zero, 0)])
    func busyTimeoutIsAppliedInMilliseconds(_ timeout: Duration, _ expected: Int64) throws {
        try withDatabase(testOptions(busyTimeout: timeout)) { db, _ throws in
            #expect(try db.scalarInt("PRAGMA busy_timeout") == expected)
        }
    }

    @Test func foreignKeysAreEnforcedByDefault() throws {
        try withDatabase { db, _ throws in
            #expect(try db.scalarInt("PRAGMA foreign_keys") == 1)
            try db.execute("CREATE TABLE parent(id INTEGER PRIMARY KEY); CREATE TABLE child(p REFERENCES parent(id))")
            let error = #expect(throws: SQLiteError.self) { try db.run("INSERT INTO child(p) VALUES (?)", [9]) }
            #expect(error?.extendedCode == Code.constraintForeignKey)
            #expect(try db.scalarInt("SELECT count(*) FROM child") == 0)
        }
    }

    @Test func foreignKeysCanBeTurnedOff() throws {
        var options = testOptions()
        options.foreignKeys = false
        try withDatabase(options) { db, _ throws in
            #expect(try db.scalarInt("PRAGMA foreign_keys") == 0)
        }
    }

    @Test func libraryVersionIsSQLite3() {
        #expect(Connection.libraryVersion.hasPrefix("3."))
    }

    // MARK: Executing and querying

    @Test func executeRunsSeveralStatements() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);")
            #expect(try db.scalarInt("SELECT sum(x) FROM t") == 3)
        }
    }

    @Test func executeFailureCarriesTheExtendedCodeMessageAndSQL() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(x UNIQUE); INSERT INTO t VALUES (1)")
            let sql = "INSERT INTO t VALUES (2); INSERT INTO t VALUES (1)"
            let error = #expect(throws: SQLiteError.self) { try db.execute(sql) }
            #expect(error?.extendedCode == Code.constraintUnique)
            #expect(error?.message == "UNIQUE constraint failed: t.x")
            #expect(error?.sql == sql)
            // sqlite3_exec stops at the failing statement; the one before it ran (autocommit).
            #expect(try db.query("SELECT x FROM t ORDER BY x") { $0.int64(0) } == [1, 2])
        }
    }

    @Test func queryMapsEveryRowInOrder() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(n, s); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            let rows = try db.query("SELECT n, s FROM t WHERE n >= ? ORDER BY n DESC", [2]) { "\($0.int64(0))\($0.string(1))" }
            #expect(rows == ["3c", "2b"])
            #expect(try db.query("SELECT n FROM t WHERE n > 9") { $0.int64(0) } == [])
        }
    }

    @Test func queryRethrowsTheRowClosuresErrorAndTheStatementStaysUsable() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(n); INSERT INTO t VALUES (1), (2), (3)")
            let sql = "SELECT n FROM t ORDER BY n"
            #expect(throws: Boom()) {
                try db.query(sql) { row -> Int64 in
                    if row.int64(0) == 2 { throw Boom() }
                    return row.int64(0)
                }
            }
            #expect(try db.query(sql) { $0.int64(0) } == [1, 2, 3])
        }
    }

    @Test func queryFirstReturnsTheFirstRowOrNil() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(n); INSERT INTO t VALUES (5), (6)")
            #expect(try db.queryFirst("SELECT n FROM t ORDER BY n") { $0.int64(0) } == 5)
            #expect(try db.queryFirst("SELECT n FROM t WHERE n > ?", [100]) { $0.int64(0) } == nil)
        }
    }

    @Test func scalarIntIsNilForNoRowAndForNull() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(n)")
            #expect(try db.scalarInt("SELECT n FROM t") == nil)
            #expect(try db.scalarInt("SELECT NULL") == nil)
            #expect(try db.scalarInt("SELECT ? + 1", [41]) == 42)
        }
    }

    @Test func isAutocommitIsFalseOnlyInsideATransaction() throws {
        try withDatabase { db, _ throws in
            #expect(db.isAutocommit)
            try db.execute("BEGIN")
            #expect(!db.isAutocommit)
            try db.execute("COMMIT")
            #expect(db.isAutocommit)
        }
    }

    // MARK: Statement cache

    @Test func cachedReturnsTheSameStatementForTheSameSQL() throws {
        try withDatabase { db, _ throws in
            let base = db.cachedStatementCount  // the checks at open cache their statements
            #expect(db.cachedStatementCount == base)
            let first = try db.cached("SELECT 1")
            let again = try db.cached("SELECT 1")
            #expect(first === again)
            #expect(db.cachedStatementCount == base + 1)
            let other = try db.cached("SELECT 2")
            #expect(other !== first)
            #expect(db.cachedStatementCount == base + 2)
        }
    }

    @Test func runAndQueryGoThroughTheCache() throws {
        try withDatabase { db, _ throws in
            let base = db.cachedStatementCount  // the checks at open cache their statements
            try db.execute("CREATE TABLE t(x)")
            #expect(db.cachedStatementCount == base)
            try db.run("INSERT INTO t(x) VALUES (?)", [1])
            try db.run("INSERT INTO t(x) VALUES (?)", [2])
            #expect(db.cachedStatementCount == base + 1)
            _ = try db.query("SELECT x FROM t") { $0.int64(0) }
            _ = try db.queryFirst("SELECT x FROM t") { $0.int64(0) }
            #expect(db.cachedStatementCount == base + 2)
            #expect(try db.cached("INSERT INTO t(x) VALUES (?)") === db.cached("INSERT INTO t(x) VALUES (?)"))
        }
    }

    @Test func prepareDoesNotCache() throws {
        try withDatabase { db, _ throws in
            let base = db.cachedStatementCount  // the checks at open cache their statements
            let a = try db.prepare("SELECT 1")
            let b = try db.prepare("SELECT 1")
            #expect(a !== b)
            #expect(db.cachedStatementCount == base)
            #expect(try db.cached("SELECT 1") !== a)
        }
    }

    @Test func aStatementThatFailsToPrepareIsNotCached() throws {
        try withDatabase { db, _ throws in
            let base = db.cachedStatementCount  // the checks at open cache their statements
            #expect(throws: SQLiteError.self) { try db.cached("SELECT * FROM missing_table") }
            #expect(db.cachedStatementCount == base)
        }
    }

    @Test func aCachedStatementWhoseStepFailsIsEvictedAndAFreshOneIsPreparedNextTime() throws {
        try withDatabase { db, _ throws in
            let base = db.cachedStatementCount  // the checks at open cache their statements
            try db.execute("CREATE TABLE t(name TEXT UNIQUE)")
            let sql = "INSERT INTO t(name) VALUES (?)"
            try db.run(sql, ["a"])
            let original = try db.cached(sql)
            _ = try db.cached("SELECT 1")
            #expect(db.cachedStatementCount == base + 2)

            let error = #expect(throws: SQLiteError.self) { try db.run(sql, ["a"]) }
            #expect(error?.extendedCode == Code.constraintUnique)
            #expect(db.cachedStatementCount == base + 1)

            let fresh = try db.cached(sql)
            #expect(fresh !== original)
            #expect(db.cachedStatementCount == base + 2)
            try db.run(sql, ["b"])
            #expect(try db.query("SELECT name FROM t ORDER BY name") { $0.string(0) } == ["a", "b"])
        }
    }

    @Test func aFailingQueryIsEvictedToo() throws {
        try withDatabase { db, _ throws in
            let base = db.cachedStatementCount  // the checks at open cache their statements
            let sql = "SELECT abs(?)"
            #expect(try db.scalarInt(sql, [-2]) == 2)
            let original = try db.cached(sql)
            #expect(throws: SQLiteError.self) { try db.scalarInt(sql, [.integer(Int64.min)]) }
            #expect(db.cachedStatementCount == base)
            #expect(try db.cached(sql) !== original)
            #expect(try db.scalarInt(sql, [-3]) == 3)
        }
    }

    @Test func aStaleStatementFailingAgainDoesNotEvictItsReplacement() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(name TEXT UNIQUE)")
            let sql = "INSERT INTO t(name) VALUES (?)"
            let stale = try db.cached(sql)
            try stale.run(["a"])
            #expect(throws: SQLiteError.self) { try stale.run(["a"]) }
            let replacement = try db.cached(sql)
            #expect(replacement !== stale)
            #expect(throws: SQLiteError.self) { try stale.run(["a"]) }
            #expect(try db.cached(sql) === replacement)
        }
    }

    @Test func aStatementThatFailsToBindStaysCached() throws {
        try withDatabase { db, _ throws in
            let sql = "SELECT ?"
            let original = try db.cached(sql)
            #expect(throws: SQLiteError.self) { try db.query(sql, [1, 2]) { $0.int64(0) } }
            #expect(try db.cached(sql) === original)
            #expect(try db.scalarInt(sql, [7]) == 7)
        }
    }

    // MARK: Busy timeout and locks

    /// Opens `path` in WAL mode with table `t(x)` holding one committed row.
    private func makeWALDatabase(at path: String) throws {
        let db = try Connection(path: path, options: testOptions())
        try db.enableWAL()
        try db.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
    }

    @Test func aWriterFailsWithBusyAfterTheTimeoutWhileAnotherConnectionHoldsTheWriteLock() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("busy.db")
            try makeWALDatabase(at: path)
            let holder = try Connection(path: path, options: testOptions(mode: .readWrite))
            let writer = try Connection(path: path, options: testOptions(mode: .readWrite, busyTimeout: .milliseconds(200)))
            try holder.execute("BEGIN IMMEDIATE")
            try holder.run("INSERT INTO t(x) VALUES (2)")

            let clock = ContinuousClock()
            var bodyRan = false
            let start = clock.now
            let error = #expect(throws: SQLiteError.self) {
                try writer.transaction(.immediate) {
                    bodyRan = true
                    try writer.run("INSERT INTO t(x) VALUES (3)")
                }
            }
            let waited = clock.now - start
            #expect(error?.isBusy == true)
            #expect(error?.code == Code.busy)
            #expect(error?.isRetryable == true)
            // SQLite's busy handler sleeps at least the timeout in all; how much longer a loaded machine makes
            // it is not bounded here (it returned, with the busy error; the test's time limit guards a hang).
            #expect(waited >= .milliseconds(180), "it waited \(waited), less than the busy timeout")
            #expect(!bodyRan)
            #expect(writer.isAutocommit)

            // An autocommit write fails the same way, and writes nothing.
            let single = #expect(throws: SQLiteError.self) { try writer.run("INSERT INTO t(x) VALUES (4)") }
            #expect(single?.isBusy == true)

            try holder.execute("ROLLBACK")
            #expect(try writer.query("SELECT x FROM t ORDER BY x") { $0.int64(0) } == [1])
        }
    }

    @Test func aWriterSucceedsOnceTheLockIsReleased() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("busy.db")
            try makeWALDatabase(at: path)
            let holder = try Connection(path: path, options: testOptions(mode: .readWrite))
            let writer = try Connection(path: path, options: testOptions(mode: .readWrite, busyTimeout: .milliseconds(200)))
            try holder.execute("BEGIN IMMEDIATE")
            try holder.run("INSERT INTO t(x) VALUES (2)")
            #expect(throws: SQLiteError.self) { try writer.run("INSERT INTO t(x) VALUES (3)") }
            try holder.execute("COMMIT")

            try writer.transaction(.immediate) { try writer.run("INSERT INTO t(x) VALUES (3)") }
            #expect(try holder.query("SELECT x FROM t ORDER BY x") { $0.int64(0) } == [1, 2, 3])
        }
    }

    /// The writer gets the lock only after the holder's COMMIT (seen through a flag set just before it),
    /// whenever each thread happens to run; the holder lets it start trying first.
    @Test func aWriterWaitingWithinItsTimeoutSucceedsWhenTheLockIsReleased() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("wait.db")
            try makeWALDatabase(at: path)
            let locked = DispatchSemaphore(value: 0)
            let writerStarting = DispatchSemaphore(value: 0)
            let finished = DispatchSemaphore(value: 0)
            let committing = Mutex(false)
            // Another thread (its own connection) holds the write lock until the writer tries, then commits.
            let thread = Thread {
                defer { finished.signal() }
                guard let holder = try? Connection(path: path, options: testOptions(mode: .readWrite)),
                      (try? holder.execute("BEGIN IMMEDIATE; INSERT INTO t VALUES (2)")) != nil
                else { locked.signal(); return }
                locked.signal()
                writerStarting.wait()
                Thread.sleep(forTimeInterval: 0.3)  // (most likely) into the writer's wait; the result does not depend on it
                committing.withLock { $0 = true }
                try? holder.execute("COMMIT")
            }
            thread.start()
            locked.wait()
            let writer = try Connection(path: path, options: testOptions(mode: .readWrite, busyTimeout: .seconds(600)))
            writerStarting.signal()
            var gotTheLockAfterTheCommit = false
            try writer.transaction(.immediate) {
                gotTheLockAfterTheCommit = committing.withLock { $0 }
                try writer.run("INSERT INTO t(x) VALUES (3)")
            }
            finished.wait()
            #expect(gotTheLockAfterTheCommit, "the writer did not wait for the lock")
            #expect(try writer.query("SELECT x FROM t ORDER BY x") { $0.int64(0) } == [1, 2, 3])
        }
    }

    @Test func readersStillReadCommittedDataInWALModeWhileAWriterHoldsTheLock() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("readers.db")
            try makeWALDatabase(at: path)
            let holder = try Connection(path: path, options: testOptions(mode: .readWrite))
            let reader = try Connection(path: path, options: testOptions(mode: .readWrite, busyTimeout: .zero))
            let readOnlyReader = try Connection(path: path, options: testOptions(mode: .readOnly, busyTimeout: .zero))
            try holder.execute("BEGIN IMMEDIATE")
            try holder.run("INSERT INTO t(x) VALUES (2)")
            // Readers see the last committed state, at once (a zero busy timeout would fail on any wait).
            #expect(try reader.query("SELECT x FROM t") { $0.int64(0) } == [1])
            #expect(try readOnlyReader.query("SELECT x FROM t") { $0.int64(0) } == [1])
            try holder.execute("COMMIT")
            #expect(try reader.query("SELECT x FROM t ORDER BY x") { $0.int64(0) } == [1, 2])
        }
    }
}
