import Foundation
import RotaSQLite
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The largest value reported so far; tests wait for it to reach a value (generous hang guard, no timing
/// assertion).
private final class Highest: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Int64 = -1

    func report(_ new: Int64) {
        condition.lock()
        value = max(value, new)
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until `target` or more was reported; false if that took the whole hang guard.
    func wait(for target: Int64, hangGuard: TimeInterval = 60) -> Bool {
        let deadline = Date(timeIntervalSinceNow: hangGuard)
        condition.lock()
        defer { condition.unlock() }
        while value < target {
            if !condition.wait(until: deadline) { return value >= target }
        }
        return true
    }
}

/// `Connection.walPath`, `dataVersion()` and `waitForOtherWriters(timeout:)`: what a scheduler needs to
/// turn `FileChangeWatcher` callbacks on the WAL into seen commits.
@Suite struct CommitWatchingTests {
    /// A WAL database with a table `t(v)`, and a connection to it.
    private func withWALTable(_ body: (Connection, TemporaryDirectory) throws -> Void) throws {
        try withDatabase { db, dir throws in
            try db.enableWAL()
            try db.execute("CREATE TABLE t(v)")
            try body(db, dir)
        }
    }

    @Test func theWALIsNextToTheDatabase() throws {
        try withWALTable { db, dir throws in
            let wal = try #require(db.walPath)
            #expect(URL(fileURLWithPath: wal).lastPathComponent == "test.db-wal")
            #expect(FileManager.default.fileExists(atPath: wal))
        }
        let memory = try Connection(path: ":memory:", options: testOptions())
        #expect(memory.walPath == nil)
    }

    @Test func dataVersionMovesForOtherConnectionsCommitsOnly() throws {
        try withWALTable { db, dir throws in
            let other = try Connection(path: dir.path("test.db"), options: testOptions(mode: .readWrite))
            let start = try db.dataVersion()
            try db.run("INSERT INTO t VALUES (1)")
            #expect(try db.dataVersion() == start)
            try other.run("INSERT INTO t VALUES (2)")
            #expect(try db.dataVersion() != start)
        }
    }

    @Test func withoutAnotherWriterItReturnsAtOnceAndRestoresTheBusyTimeout() throws {
        try withWALTable { db, _ throws in
            #expect(try db.waitForOtherWriters(timeout: .seconds(60)))
            #expect(db.isAutocommit)
            #expect(try db.scalarInt("PRAGMA busy_timeout") == 2_000)  // testOptions' busy timeout
            #expect(try db.scalarInt("SELECT count(*) FROM t") == 0)   // nothing written
        }
    }

    @Test func itWaitsOutAWriteTransactionOfAnotherConnection() throws {
        try withWALTable { db, dir throws in
            let path = dir.path("test.db")
            try db.execute("BEGIN IMMEDIATE")
            try db.run("INSERT INTO t VALUES ('in progress')")
            let started = DispatchSemaphore(value: 0)
            let finished = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var outcome: (waited: Bool, rows: Int64?)?
            nonisolated(unsafe) var failure: (any Error)?
            let thread = Thread {
                do {
                    let other = try Connection(path: path, options: testOptions(mode: .readWrite, quickCheck: false))
                    started.signal()
                    let waited = try other.waitForOtherWriters(timeout: .seconds(60))
                    outcome = (waited, try other.scalarInt("SELECT count(*) FROM t"))
                } catch {
                    failure = error
                    started.signal()
                }
                finished.signal()
            }
            thread.start()
            #expect(started.wait(timeout: .now() + 60) == .success)
            try db.execute("COMMIT")  // whether the other thread is waiting yet or not, it must see this
            #expect(finished.wait(timeout: .now() + 60) == .success)
            #expect(failure == nil)
            #expect(outcome?.waited == true)
            #expect(outcome?.rows == 1)
        }
    }

    @Test func itGivesUpWhileAWriterKeepsTheLock() throws {
        try withWALTable { db, dir throws in
            let other = try Connection(path: dir.path("test.db"), options: testOptions(mode: .readWrite))
            try db.execute("BEGIN IMMEDIATE")
            #expect(try other.waitForOtherWriters(timeout: .milliseconds(20)) == false)
            #expect(other.isAutocommit)
            #expect(try other.scalarInt("PRAGMA busy_timeout") == 2_000)
            try db.execute("ROLLBACK")
            #expect(try other.waitForOtherWriters(timeout: .seconds(60)))
        }
    }

    @Test func insideATransactionItIsAMisuse() throws {
        try withWALTable { db, _ throws in
            try db.transaction(.deferred) {
                #expect(throws: SQLiteError.self) { try db.waitForOtherWriters(timeout: .seconds(1)) }
                return ()
            }
        }
    }

    #if os(Linux)
    /// The gap this closes: a FULL commit's frames are written (the callback) before it is synced and
    /// published; a look without waiting usually misses it, and nothing else calls back. With the wait,
    /// every commit is seen, the last one included.
    @Test(arguments: [Connection.Synchronous.full, .normal])
    func theWatcherWithTheWaitSeesEveryCommitOfAnotherConnection(synchronous: Connection.Synchronous) throws {
        try withWALTable { db, dir throws in
            let writer = try Connection(path: dir.path("test.db"), options: testOptions(mode: .readWrite, synchronous: synchronous))
            let highest = Highest()
            nonisolated(unsafe) let observer = db  // used on the watcher's thread only, from here on
            let watcher = try FileChangeWatcher(path: try #require(db.walPath)) {
                do {
                    _ = try observer.waitForOtherWriters(timeout: .seconds(60))
                    highest.report(try observer.scalarInt("SELECT ifnull(max(v), 0) FROM t") ?? 0)
                } catch {
                    highest.report(-2)
                }
            }
            defer { watcher.stop() }
            for value in Int64(1)...30 {
                try writer.run("INSERT INTO t VALUES (?)", [.integer(value)])
                #expect(highest.wait(for: value), "commit \(value) not seen")
            }
        }
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3")))
    func theWatcherWithTheWaitSeesACommitOfAnotherProcess() throws {
        try withWALTable { db, dir throws in
            let highest = Highest()
            nonisolated(unsafe) let observer = db
            let watcher = try FileChangeWatcher(path: try #require(db.walPath)) {
                _ = try? observer.waitForOtherWriters(timeout: .seconds(60))
                highest.report((try? observer.scalarInt("SELECT ifnull(max(v), 0) FROM t") ?? 0) ?? -2)
            }
            defer { watcher.stop() }
            for value in 1...3 {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
                process.arguments = [dir.path("test.db"), "PRAGMA synchronous = FULL; INSERT INTO t VALUES (\(value))"]
                process.standardOutput = FileHandle.nullDevice
                try process.run()
                process.waitUntilExit()
                #expect(process.terminationStatus == 0)
                #expect(highest.wait(for: Int64(value)), "commit \(value) not seen")
            }
        }
    }
    #endif
}
