import Foundation
import RotaSQLite
#if canImport(Glibc)
import Glibc
#endif

/// A unique directory under the system's temporary directory, removed when the test's body ends.
///
/// ```swift
/// try withTemporaryDirectory { dir throws in
///     let db = try Connection(path: dir.path("test.db"))
/// }
/// ```
struct TemporaryDirectory {
    /// The directory's URL.
    let url: URL

    /// The path of `name` inside the directory.
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// The names of the files in the directory, sorted.
    func fileNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
    }
}

/// Runs `body` with a fresh temporary directory and removes the directory afterwards, even when `body` throws.
func withTemporaryDirectory<T>(_ body: (TemporaryDirectory) throws -> T) throws -> T {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("RotaSQLiteTests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
    defer {
        // A test may have made the directory read-only; make it removable again.
        try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        try? FileManager.default.removeItem(at: url)
    }
    return try body(TemporaryDirectory(url: url))
}

/// The bytes of the file at `path`.
func fileBytes(_ path: String) throws -> Data {
    try Data(contentsOf: URL(fileURLWithPath: path))
}

/// Writes `bytes` to a new file at `path`.
func writeFile(_ path: String, _ bytes: Data) throws {
    try bytes.write(to: URL(fileURLWithPath: path))
}

/// Options for tests: durable defaults, but a short busy timeout so a lock mistake fails fast.
func testOptions(
    mode: Connection.Mode = .readWriteCreate,
    synchronous: Connection.Synchronous = .full,
    busyTimeout: Duration = .seconds(2),
    quickCheck: Bool = true
) -> Connection.Options {
    Connection.Options(mode: mode, synchronous: synchronous, busyTimeout: busyTimeout, quickCheck: quickCheck)
}

/// True when the tests run as root, where file permission bits do not stop reads or writes.
var isRoot: Bool { getuid() == 0 }

/// The names of the tables (not SQLite's own) in the database, sorted.
func tableNames(_ db: Connection) throws -> [String] {
    try db.query("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name") {
        $0.string(0)
    }
}

/// A test error thrown from transaction bodies.
struct Boom: Error, Equatable {
    var tag = "boom"
}

/// Runs `body` with a connection to a new database file `test.db` in a fresh temporary directory.
func withDatabase<T>(
    _ options: Connection.Options = testOptions(),
    _ body: (Connection, TemporaryDirectory) throws -> T
) throws -> T {
    try withTemporaryDirectory { dir throws in
        let db = try Connection(path: dir.path("test.db"), options: options)
        return try body(db, dir)
    }
}

/// SQLite result codes, spelled out so the tests state the numbers they expect.
enum Code {
    static let error: Int32 = 1
    static let busy: Int32 = 5
    static let locked: Int32 = 6
    static let readOnly: Int32 = 8
    static let ioErr: Int32 = 10
    static let corrupt: Int32 = 11
    static let full: Int32 = 13
    static let cantOpen: Int32 = 14
    static let constraint: Int32 = 19
    static let range: Int32 = 25
    static let notADatabase: Int32 = 26

    static let busySnapshot: Int32 = 517
    static let ioErrRead: Int32 = 266
    static let corruptVTab: Int32 = 267
    static let constraintCheck: Int32 = 275
    static let readOnlyDirectory: Int32 = 1544
    static let constraintForeignKey: Int32 = 787
    static let constraintNotNull: Int32 = 1299
    static let constraintPrimaryKey: Int32 = 1555
    static let constraintUnique: Int32 = 2067
}
