import Foundation
import RotaSQLite
import Testing

/// Binding every storage class, reading it back with every reader, and the statement's lifecycle.
@Suite struct StatementTests {
    // MARK: Integers

    @Test(arguments: [Int64.min, -1, 0, 1, 42, Int64(Int32.max) + 1, Int64.max])
    func integerRoundTripsThroughATableExactly(_ number: Int64) throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v)")
            try db.run("INSERT INTO t(v) VALUES (?)", [.integer(number)])
            let stmt = try db.prepare("SELECT v, typeof(v) FROM t")
            #expect(try stmt.step())
            #expect(stmt.int64(0) == number)
            #expect(stmt.optionalInt64(0) == number)
            #expect(stmt.value(0) == .integer(number))
            #expect(stmt.string(1) == "integer")
            #expect(!stmt.isNull(0))
            #expect(try !stmt.step())
        }
    }

    @Test func intReaderReturnsAnInt() throws {
        try withDatabase { db, _ throws in
            let value = try db.queryFirst("SELECT ?", [.int(Int(-7))]) { $0.int(0) }
            #expect(value == -7)
        }
    }

    @Test func typedIntegerBindStoresAnInteger() throws {
        try withDatabase { db, _ throws in
            let stmt = try db.prepare("SELECT ?, typeof(?1)")
            try stmt.bind(Int64(1) << 40, at: 1)
            #expect(try stmt.step())
            #expect(stmt.int64(0) == 1 << 40)
            #expect(stmt.string(1) == "integer")
        }
    }

    // MARK: Doubles

    @Test(arguments: [0.0, 1.0, 0.1, -2.5, Double.pi, -1.5e300, Double.leastNonzeroMagnitude,
                      Double.greatestFiniteMagnitude, Double.infinity, -Double.infinity])
    func doubleRoundTripsThroughATableExactly(_ number: Double) throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v)")
            try db.run("INSERT INTO t(v) VALUES (?)", [.real(number)])
            let stmt = try db.prepare("SELECT v, typeof(v) FROM t")
            #expect(try stmt.step())
            #expect(stmt.double(0) == number)
            #expect(stmt.optionalDouble(0) == number)
            #expect(stmt.value(0) == .real(number))
            #expect(stmt.string(1) == "real")
        }
    }

    // MARK: Strings

    static let strings: [String] = [
        "plain ascii",
        "héllo wörld",
        "日本語のテキスト",
        "emoji 🎉 and a family 👩‍👩‍👧",
        "e\u{301} (e + combining acute) vs \u{e9}",
        "line\nbreak\ttab \"quotes\" 'single' \\ backslash",
        "NUL \u{0} inside and after",
        "\u{0}",
    ]

    @Test(arguments: strings)
    func stringRoundTripsThroughATableByteForByte(_ text: String) throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v)")
            try db.run("INSERT INTO t(v) VALUES (?)", [.text(text)])
            let stmt = try db.prepare("SELECT v, typeof(v), hex(v) FROM t")
            #expect(try stmt.step())
            #expect(stmt.string(0) == text)
            #expect(stmt.optionalString(0) == text)
            #expect(stmt.value(0) == .text(text))
            #expect(stmt.string(1) == "text")
            // The stored bytes are exactly the string's UTF-8, nothing cut or added.
            #expect(stmt.string(2) == text.utf8.map { String(format: "%02X", $0) }.joined())
        }
    }

    @Test(arguments: strings)
    func typedStringBindStoresTheWholeString(_ text: String) throws {
        try withDatabase { db, _ throws in
            let stmt = try db.prepare("SELECT ?, typeof(?1)")
            try stmt.bind(text, at: 1)
            #expect(try stmt.step())
            #expect(stmt.string(0) == text)
            #expect(stmt.string(1) == "text")
        }
    }

    @Test func longStringRoundTripsThroughATable() throws {
        let text = String(repeating: "long ✓ ", count: 20_000)
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v)")
            try db.run("INSERT INTO t(v) VALUES (?)", [.text(text)])
            #expect(try db.queryFirst("SELECT v FROM t") { $0.string(0) } == text)
            #expect(try db.scalarInt("SELECT length(v) FROM t") == Int64(text.count))
        }
    }

    @Test func emptyStringIsStoredAsTextNotNull() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v)")
            try db.run("INSERT INTO t(v) VALUES (?)", [.text("")])
            let stmt = try db.prepare("SELECT v, typeof(v), length(v) FROM t")
            #expect(try stmt.step())
            #expect(!stmt.isNull(0))
            #expect(stmt.string(0) == "")
            #expect(stmt.optionalString(0) == "")
            #expect(stmt.value(0) == .text(""))
            #expect(stmt.string(1) == "text")
            #expect(stmt.int64(2) == 0)
        }
    }

    @Test func typedStringBindOfNilStoresNull() throws {
        try withDatabase { db, _ throws in
            let stmt = try db.prepare("SELECT ?, typeof(?1)")
            try stmt.bind(String?.none, at: 1)
            #expect(try stmt.step())
            #expect(stmt.isNull(0))
            #expect(stmt.optionalString(0) == nil)
            #expect(stmt.string(1) == "null")
        }
    }

    // MARK: Blobs

    static let blobs: [[UInt8]] = [
        [0],
        [0, 1, 2, 255],
        Array(0...255),
        [0, 0, 0],
        (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) },
    ]

    @Test(arguments: blobs)
    func blobRoundTripsThroughATableByteForByte(_ bytes: [UInt8]) throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v)")
            try db.run("INSERT INTO t(v) VALUES (?)", [.blob(bytes)])
            let stmt = try db.prepare("SELECT v, typeof(v), length(v) FROM t")
            #expect(try stmt.step())
            #expect(stmt.blob(0) == bytes)
            #expect(stmt.optionalBlob(0) == bytes)
            #expect(stmt.value(0) == .blob(bytes))
            #expect(stmt.string(1) == "blob")
            #expect(stmt.int(2) == bytes.count)
        }
    }

    @Test func emptyBlobIsStoredAsABlobNotNull() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v)")
            try db.run("INSERT INTO t(v) VALUES (?)", [.blob([])])
            let stmt = try db.prepare("SELECT v, typeof(v), length(v) FROM t")
            #expect(try stmt.step())
            #expect(!stmt.isNull(0))
            #expect(stmt.blob(0) == [])
            #expect(stmt.optionalBlob(0) == [])
            #expect(stmt.value(0) == .blob([]))
            #expect(stmt.string(1) == "blob")
            #expect(stmt.int64(2) == 0)
        }
    }

    // MARK: Null

    @Test func nullReadsAsNilFromOptionalReadersAndAsDefaultsFromTheOthers() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v)")
            try db.run("INSERT INTO t(v) VALUES (?)", [.null])
            let stmt = try db.prepare("SELECT v, typeof(v) FROM t")
            #expect(try stmt.step())
            #expect(stmt.isNull(0))
            #expect(stmt.value(0) == .null)
            #expect(stmt.string(1) == "null")
            #expect(stmt.optionalInt64(0) == nil)
            #expect(stmt.optionalDouble(0) == nil)
            #expect(stmt.optionalString(0) == nil)
            #expect(stmt.optionalBlob(0) == nil)
            #expect(stmt.int64(0) == 0)
            #expect(stmt.int(0) == 0)
            #expect(stmt.double(0) == 0)
            #expect(stmt.string(0) == "")
            #expect(stmt.blob(0) == [])
        }
    }

    // MARK: SQLiteValue

    static let values: [SQLiteValue] = [
        .null, .integer(0), .integer(-123_456_789_012), .real(2.5), .real(-0.125),
        .text(""), .text("ünïcødé 🎉"), .blob([]), .blob([0, 128, 255]),
    ]

    @Test(arguments: values)
    func valueRoundTripsThroughAParameterWithItsStorageClass(_ value: SQLiteValue) throws {
        try withDatabase { db, _ throws in
            let read = try db.queryFirst("SELECT ?", [value]) { $0.value(0) }
            #expect(read == value)
        }
    }

    @Test(arguments: values)
    func valueRoundTripsThroughATable(_ value: SQLiteValue) throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v)")
            try db.run("INSERT INTO t(v) VALUES (?)", [value])
            #expect(try db.queryFirst("SELECT v FROM t") { $0.value(0) } == value)
        }
    }

    @Test func literalsBuildTheMatchingValues() {
        let integer: SQLiteValue = 42
        let real: SQLiteValue = 2.5
        let text: SQLiteValue = "hello"
        let null: SQLiteValue = nil
        #expect(integer == .integer(42))
        #expect(real == .real(2.5))
        #expect(text == .text("hello"))
        #expect(null == .null)
    }

    @Test func optionalFactoriesMapNilToNull() {
        #expect(SQLiteValue.int(Int64?.some(5)) == .integer(5))
        #expect(SQLiteValue.int(Int64?.none) == .null)
        #expect(SQLiteValue.int(Int?.some(-5)) == .integer(-5))
        #expect(SQLiteValue.int(Int?.none) == .null)
        #expect(SQLiteValue.string("x") == .text("x"))
        #expect(SQLiteValue.string(nil) == .null)
    }

    @Test func valuesOfDifferentStorageClassesAreNotEqual() {
        #expect(SQLiteValue.integer(1) != .real(1))
        #expect(SQLiteValue.text("1") != .integer(1))
        #expect(SQLiteValue.blob(Array("a".utf8)) != .text("a"))
        #expect(SQLiteValue.text("") != .null)
        #expect(SQLiteValue.blob([]) != .null)
        #expect(Set<SQLiteValue>([.integer(1), .integer(1), .real(1)]).count == 2)
    }

    // MARK: Binding errors

    @Test func bindingMoreValuesThanParametersFailsWithRangeAndWritesNothing() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(a, b)")
            let sql = "INSERT INTO t(a, b) VALUES (?, ?)"
            let error = #expect(throws: SQLiteError.self) {
                try db.run(sql, [1, 2, 3])
            }
            #expect(error?.code == Code.range)
            #expect(error?.message == "expected 2 parameter values, got 3")
            #expect(error?.sql == sql)
            #expect(try db.scalarInt("SELECT count(*) FROM t") == 0)
        }
    }

    @Test func bindingFewerValuesThanParametersFailsWithRangeAndWritesNothing() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(a, b)")
            let sql = "INSERT INTO t(a, b) VALUES (?, ?)"
            let error = #expect(throws: SQLiteError.self) {
                try db.run(sql, [1])
            }
            #expect(error?.code == Code.range)
            #expect(error?.sql == sql)
            #expect(error?.message == "expected 2 parameter values, got 1")
            #expect(try db.scalarInt("SELECT count(*) FROM t") == 0)
            // Leaving out every value is the same mistake.
            #expect(throws: SQLiteError.self) { try db.run(sql) }
            #expect(try db.scalarInt("SELECT count(*) FROM t") == 0)
        }
    }

    @Test func numberedParametersCountOncePerNumber() throws {
        try withDatabase { db, _ throws in
            let row = try db.queryFirst("SELECT ?1, ?1 + ?2", [10, 5]) { [$0.int64(0), $0.int64(1)] }
            #expect(row == [10, 15])
        }
    }

    @Test(arguments: [Int32(0), 2])
    func bindingAtAnIndexOutOfRangeFailsWithRange(_ index: Int32) throws {
        try withDatabase { db, _ throws in
            let stmt = try db.prepare("SELECT ?")
            let error = #expect(throws: SQLiteError.self) { try stmt.bind(.integer(1), at: index) }
            #expect(error?.code == Code.range)
            #expect(error?.sql == "SELECT ?")
            #expect(throws: SQLiteError.self) { try stmt.bind(Int64(1), at: index) }
            #expect(throws: SQLiteError.self) { try stmt.bind("x", at: index) }
        }
    }

    // MARK: Lifecycle

    @Test func bindingAgainRestartsTheStatementWithTheNewValues() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v); INSERT INTO t VALUES (1), (2), (3), (4)")
            let stmt = try db.prepare("SELECT v FROM t WHERE v >= ? ORDER BY v")
            try stmt.bind([2])
            #expect(try stmt.step())
            #expect(stmt.int64(0) == 2)
            // Mid-iteration: binding resets, so the next step is the first row for the new value.
            try stmt.bind([3])
            var rows: [Int64] = []
            while try stmt.step() { rows.append(stmt.int64(0)) }
            #expect(rows == [3, 4])
        }
    }

    @Test func resetKeepsTheBindingsAndRunsAgainFromTheStart() throws {
        try withDatabase { db, _ throws in
            let stmt = try db.prepare("SELECT ? * 2")
            try stmt.bind([21])
            #expect(try stmt.step())
            #expect(stmt.int64(0) == 42)
            #expect(try !stmt.step())
            stmt.reset()
            #expect(try stmt.step())
            #expect(stmt.int64(0) == 42)
        }
    }

    @Test func stepReturnsEveryRowThenFalse() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v); INSERT INTO t VALUES ('a'), ('b'), ('c')")
            let stmt = try db.prepare("SELECT v FROM t ORDER BY v")
            var rows: [String] = []
            while try stmt.step() { rows.append(stmt.string(0)) }
            #expect(rows == ["a", "b", "c"])
        }
    }

    @Test func columnsAreCountedAndNamed() throws {
        try withDatabase { db, _ throws in
            let stmt = try db.prepare("SELECT 1 AS one, 'x' AS two, NULL AS three")
            #expect(stmt.columnCount == 3)
            #expect(stmt.columnName(0) == "one")
            #expect(stmt.columnName(1) == "two")
            #expect(stmt.columnName(2) == "three")
            #expect(stmt.sql == "SELECT 1 AS one, 'x' AS two, NULL AS three")
        }
    }

    @Test func runExecutesToCompletionAndReportsChanges() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v); INSERT INTO t VALUES (1), (2), (3)")
            let stmt = try db.prepare("UPDATE t SET v = v * 10 WHERE v >= ?")
            try stmt.run([2])
            #expect(db.changes == 2)
            #expect(try db.query("SELECT v FROM t ORDER BY v") { $0.int64(0) } == [1, 20, 30])
            #expect(try db.run("DELETE FROM t WHERE v > ?", [5]) == 2)
        }
    }

    @Test func lastInsertRowIDIsTheRowJustInserted() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
            try db.run("INSERT INTO t(v) VALUES (?)", ["a"])
            try db.run("INSERT INTO t(v) VALUES (?)", ["b"])
            #expect(db.lastInsertRowID == 2)
            #expect(try db.queryFirst("SELECT v FROM t WHERE id = ?", [.integer(db.lastInsertRowID)]) { $0.string(0) } == "b")
        }
    }

    @Test func prepareWithASyntaxErrorFailsWithTheMessageAndTheSQL() throws {
        try withDatabase { db, _ throws in
            let sql = "SELEC 1"
            let error = #expect(throws: SQLiteError.self) { try db.prepare(sql) }
            #expect(error?.extendedCode == Code.error)
            #expect(error?.message.contains("syntax error") == true)
            #expect(error?.sql == sql)
        }
    }

    @Test func stepOnAFailingQueryThrowsTheRuntimeError() throws {
        try withDatabase { db, _ throws in
            let stmt = try db.prepare("SELECT abs(?)")
            try stmt.bind([.integer(Int64.min)])
            let error = #expect(throws: SQLiteError.self) { try stmt.step() }
            #expect(error?.code == Code.error)
            #expect(error?.message.contains("integer overflow") == true)
            #expect(error?.sql == "SELECT abs(?)")
            // The statement was reset and can run again with another value.
            try stmt.bind([-3])
            #expect(try stmt.step())
            #expect(stmt.int64(0) == 3)
        }
    }

    @Test func aStatementOutlivingItsCacheEntryStillWorks() throws {
        try withDatabase { db, _ throws in
            try db.execute("CREATE TABLE t(v UNIQUE)")
            let sql = "INSERT INTO t(v) VALUES (?)"
            let stmt = try db.cached(sql)
            try stmt.run(["a"])
            #expect(throws: SQLiteError.self) { try stmt.run(["a"]) }
            // Evicted from the cache, but the caller's reference keeps working.
            try stmt.run(["b"])
            #expect(try db.query("SELECT v FROM t ORDER BY v") { $0.string(0) } == ["a", "b"])
        }
    }
}
