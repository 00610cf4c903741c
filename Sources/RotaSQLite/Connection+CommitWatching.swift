import CSQLite
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Noticing commits of other connections and processes, with ``FileChangeWatcher`` on the WAL.
///
/// A commit in WAL mode writes its frames to the `-wal` file (the watcher's callback comes then), and only
/// afterwards, having synced the file (`synchronous = FULL`), publishes the commit in the `-shm` index,
/// which is memory-mapped and raises no file event. So at the callback the commit is often not visible
/// yet: with FULL, a `PRAGMA data_version` read at once misses nearly every commit of another process,
/// and nothing else wakes the watcher until the next commit. The writer holds the write lock from before
/// its first frame until the commit is published, so ``waitForOtherWriters(timeout:)`` (take the write lock,
/// release it) before reading `data_version` closes that gap.
extension Connection {
    /// The path of the WAL file of this connection's main database (`<database>-wal`, next to the file
    /// SQLite opened, with symbolic links resolved as SQLite resolves them), or nil for an in-memory or
    /// temporary database. The file exists only while the database is in WAL mode and open; watch it
    /// with ``FileChangeWatcher`` to learn of commits by other connections and processes.
    public var walPath: String? {
        guard let database = sqlite3_db_filename(handle, "main"), database.pointee != 0,
              let wal = sqlite3_filename_wal(database), wal.pointee != 0 else { return nil }
        return String(cString: wal)
    }

    /// `PRAGMA data_version`: changes when another connection (of this process or another) commits to the
    /// database; this connection's own commits leave it alone. Cheap (a read of the WAL index).
    public func dataVersion() throws -> Int64 {
        try scalarInt("PRAGMA data_version") ?? 0
    }

    /// Waits until no other connection is inside a write transaction, by taking the write lock and
    /// releasing it (`BEGIN IMMEDIATE; ROLLBACK`; nothing is written). Afterwards every commit whose WAL
    /// frames were written before the call is visible to this connection, and counted by
    /// ``dataVersion()``: the step between a ``FileChangeWatcher`` callback on the `-wal` file and the
    /// look at `data_version` (see the extension's notes).
    ///
    /// While the lock is taken, it retries every 50 µs, doubling to 1 ms (finer than SQLite's busy
    /// handler, whose first waits are 1, 2 and 5 ms), for up to `timeout`; the connection's own busy
    /// timeout is restored afterwards. Costs a few microseconds when no other writer is active.
    ///
    /// - Parameter timeout: how long to wait for a writer that keeps the lock.
    /// - Returns: true once the lock was taken and released; false if another connection still held it
    ///   after `timeout` (look again later: its commit may come).
    /// - Throws: ``SQLiteError`` when a transaction is open on this connection (`SQLITE_MISUSE`), or when
    ///   `BEGIN` fails for another reason than a busy lock (a read-only file, I/O).
    public func waitForOtherWriters(timeout: Duration) throws -> Bool {
        guard isAutocommit else {
            throw SQLiteError(extendedCode: SQLITE_MISUSE, message: "waitForOtherWriters() inside a transaction")
        }
        sqlite3_busy_timeout(handle, 0)
        defer { sqlite3_busy_timeout(handle, Self.milliseconds(options.busyTimeout)) }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var pause: UInt32 = 50
        while true {
            do {
                try cached("BEGIN IMMEDIATE").run()
            } catch let error as SQLiteError where error.isBusy {
                if clock.now >= deadline { return false }
                usleep(pause)
                pause = min(pause * 2, 1_000)
                continue
            }
            try cached("ROLLBACK").run()
            return true
        }
    }

    /// `duration` in whole milliseconds, clamped to `Int32` (for `sqlite3_busy_timeout`).
    static func milliseconds(_ duration: Duration) -> Int32 {
        Int32(clamping: duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }
}
