import Foundation
@testable import RotaSQLite
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Counts a watcher's callbacks; tests wait for the count to pass a value (with a generous hang guard,
/// never a timing assertion).
private final class Callbacks: @unchecked Sendable {
    private let condition = NSCondition()
    private var value = 0

    func record() {
        condition.lock()
        value += 1
        condition.broadcast()
        condition.unlock()
    }

    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return value
    }

    /// Waits until more than `previous` callbacks have started; false if that took the whole hang guard.
    func wait(beyond previous: Int, hangGuard: TimeInterval = 60) -> Bool {
        let deadline = Date(timeIntervalSinceNow: hangGuard)
        condition.lock()
        defer { condition.unlock() }
        while value <= previous {
            if !condition.wait(until: deadline) { return value > previous }
        }
        return true
    }
}

/// Holds a watcher for its own callback.
private final class WatcherSlot: Sendable {
    let watcher = Mutex<FileChangeWatcher?>(nil)
}

#if os(Linux)
/// The inotify watches of this process on `directory` (in any inotify instance): 0 once a watcher of a
/// file in it has stopped and closed its descriptors. Other tests' watchers watch other directories.
private func inotifyWatches(on directory: String) -> Int {
    var info = stat()
    guard stat(directory, &info) == 0 else { return -1 }
    let needle = " ino:" + String(UInt64(info.st_ino), radix: 16) + " "
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fdinfo")) ?? []
    return fds.reduce(0) { count, fd in
        guard let text = try? String(contentsOfFile: "/proc/self/fdinfo/" + fd, encoding: .utf8) else { return count }
        return count + text.split(separator: "\n").filter { $0.hasPrefix("inotify wd:") && $0.contains(needle) }.count
    }
}

/// Appends `text` to the file at `path` with exactly one write(2) (one inotify event).
private func appendOnce(_ path: String, _ text: String = "x") throws {
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    defer { close(fd) }
    let written = text.utf8CString.withUnsafeBytes { write(fd, $0.baseAddress, text.utf8.count) }
    guard written == text.utf8.count else { throw POSIXError(.EIO) }
}

/// Runs `/bin/sh -c script` and waits for it.
private func shell(_ script: String) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", script]
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

/// A WAL database `test.db` in `dir` with a table `t(v)`; every connection to it is closed on return,
/// so its `-wal` file is gone.
private func makeWALDatabase(_ dir: TemporaryDirectory) throws -> String {
    let path = dir.path("test.db")
    let db = try Connection(path: path, options: testOptions())
    try db.enableWAL()
    try db.execute("CREATE TABLE t(v TEXT)")
    return path
}
#endif

/// `FileChangeWatcher`: inotify on a file's directory, filtered by name.
@Suite struct FileChangeWatcherTests {
    #if os(Linux)
    @Test func aCommitOfAnotherConnectionCallsBack() throws {
        try withTemporaryDirectory { dir throws in
            let path = try makeWALDatabase(dir)
            let db = try Connection(path: path, options: testOptions(mode: .readWrite))
            try db.run("INSERT INTO t(v) VALUES ('before')")
            let walPath = try #require(db.walPath)
            #expect(walPath.hasSuffix("/test.db-wal"))
            #expect(FileManager.default.fileExists(atPath: walPath))
            let callbacks = Callbacks()
            let watcher = try FileChangeWatcher(path: walPath) { callbacks.record() }
            defer { watcher.stop() }

            let other = try Connection(path: path, options: testOptions(mode: .readWrite))
            try other.run("INSERT INTO t(v) VALUES ('a')")
            #expect(callbacks.wait(beyond: 0))
            // And the next commit after that callback started, whoever makes it.
            let seen = callbacks.count
            try db.run("INSERT INTO t(v) VALUES ('b')")
            #expect(callbacks.wait(beyond: seen))
        }
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3")))
    func aCommitOfAnotherProcessCallsBack() throws {
        try withTemporaryDirectory { dir throws in
            let path = try makeWALDatabase(dir)
            let db = try Connection(path: path, options: testOptions(mode: .readWrite))
            let walPath = try #require(db.walPath)
            let callbacks = Callbacks()
            let watcher = try FileChangeWatcher(path: walPath) { callbacks.record() }
            defer { watcher.stop() }

            #expect(try shell("/usr/bin/sqlite3 '\(path)' \"INSERT INTO t(v) VALUES ('from sqlite3')\"") == 0)
            #expect(callbacks.wait(beyond: 0))
            #expect(try db.scalarInt("SELECT count(*) FROM t") == 1)
        }
    }

    @Test func theWALFileAbsentAtStartThenDeletedAndRecreated() throws {
        try withTemporaryDirectory { dir throws in
            let path = try makeWALDatabase(dir)
            let walPath = path + "-wal"
            #expect(!FileManager.default.fileExists(atPath: walPath))
            let callbacks = Callbacks()
            let watcher = try FileChangeWatcher(path: walPath) { callbacks.record() }
            defer { watcher.stop() }

            var seen = callbacks.count
            var db: Connection? = try Connection(path: path, options: testOptions(mode: .readWrite))
            try db?.run("INSERT INTO t(v) VALUES ('a')")
            #expect(callbacks.wait(beyond: seen))
            #expect(FileManager.default.fileExists(atPath: walPath))

            // A checkpoint that truncates the WAL.
            seen = callbacks.count
            _ = try db?.query("PRAGMA wal_checkpoint(TRUNCATE)") { $0.int64(0) }
            #expect(callbacks.wait(beyond: seen))

            // The last connection closes: SQLite checkpoints and deletes the WAL.
            seen = callbacks.count
            db = nil
            #expect(!FileManager.default.fileExists(atPath: walPath))
            #expect(callbacks.wait(beyond: seen))

            // A new connection creates it again, and its commits are seen.
            seen = callbacks.count
            db = try Connection(path: path, options: testOptions(mode: .readWrite))
            try db?.run("INSERT INTO t(v) VALUES ('b')")
            #expect(callbacks.wait(beyond: seen))
            seen = callbacks.count
            try db?.run("INSERT INTO t(v) VALUES ('c')")
            #expect(callbacks.wait(beyond: seen))
        }
    }

    @Test func creationWriteTruncationReplacementDeletionAndRecreationEachCallBack() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("watched")
            let callbacks = Callbacks()
            let watcher = try FileChangeWatcher(path: path) { callbacks.record() }
            defer { watcher.stop() }

            func expectCallback(_ what: Comment, _ change: () throws -> Void) throws {
                let seen = callbacks.count
                try change()
                #expect(callbacks.wait(beyond: seen), what)
            }
            try expectCallback("created") { #expect(FileManager.default.createFile(atPath: path, contents: Data("a".utf8))) }
            try expectCallback("appended") { try appendOnce(path) }
            try expectCallback("truncated") { #expect(truncate(path, 0) == 0) }
            try expectCallback("replaced by a rename") {
                try Data("new".utf8).write(to: URL(fileURLWithPath: dir.path("replacement")))
                #expect(rename(dir.path("replacement"), path) == 0)
            }
            try expectCallback("renamed away") { #expect(rename(path, dir.path("elsewhere")) == 0) }
            try expectCallback("renamed back") { #expect(rename(dir.path("elsewhere"), path) == 0) }
            try expectCallback("deleted") { try FileManager.default.removeItem(atPath: path) }
            try expectCallback("recreated") { try appendOnce(path) }
            try expectCallback("written by another process") {
                let status = try shell("echo x >> '\(path)'")
                #expect(status == 0)
            }
        }
    }

    @Test func readsAndOtherFilesOfTheDirectoryDoNotCallBack() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("watched")
            try appendOnce(path, "content")
            let callbacks = Callbacks()
            let watcher = try FileChangeWatcher(path: path) { callbacks.record() }

            for index in 0..<20 {
                _ = try Data(contentsOf: URL(fileURLWithPath: path))           // open, read, close
                #expect(chmod(path, index.isMultiple(of: 2) ? 0o600 : 0o644) == 0)  // metadata only
                try appendOnce(dir.path("sibling"))                             // another file
                try appendOnce(dir.path("watched-wal"))                         // a longer name
                try FileManager.default.removeItem(atPath: dir.path("watched-wal"))
            }
            // One write(2) of the file itself, queued after all of the above: exactly one callback, since
            // nothing above counts.
            try appendOnce(path)
            #expect(callbacks.wait(beyond: 0))
            watcher.stop()
            #expect(callbacks.count == 1)
        }
    }

    @Test func nothingCallsBackWhileNothingChangesNorAfterStop() throws {
        try withTemporaryDirectory { dir throws in
            let path = try makeWALDatabase(dir)
            let db = try Connection(path: path, options: testOptions(mode: .readWrite))
            try db.run("INSERT INTO t(v) VALUES ('a')")
            let walPath = try #require(db.walPath)
            let callbacks = Callbacks()
            let watcher = try FileChangeWatcher(path: walPath) { callbacks.record() }
            // Readers of the database do not write its WAL.
            let reader = try Connection(path: path, options: testOptions(mode: .readOnly))
            for _ in 0..<50 { _ = try reader.scalarInt("SELECT count(*) FROM t") }
            watcher.stop()
            let afterStop = callbacks.count
            #expect(afterStop == 0)
            // Stopped: the thread is gone, so commits call nothing.
            for value in 0..<20 { try db.run("INSERT INTO t(v) VALUES (?)", [.integer(Int64(value))]) }
            #expect(callbacks.count == afterStop)
        }
    }

    @Test func stopEndsTheThreadAndClosesTheDescriptors() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("watched")
            let callbacks = Callbacks()
            let watcher = try FileChangeWatcher(path: path) { callbacks.record() }
            #expect(watcher.directory == dir.url.path)
            #expect(inotifyWatches(on: dir.url.path) == 1)
            try appendOnce(path)
            #expect(callbacks.wait(beyond: 0))

            watcher.stop()
            #expect(inotifyWatches(on: dir.url.path) == 0)
            let seen = callbacks.count
            try appendOnce(path)
            try FileManager.default.removeItem(atPath: path)
            #expect(callbacks.count == seen)  // the thread is gone: nothing can call back
            watcher.stop()  // again: nothing to do
        }
    }

    @Test func concurrentStopsAllReturnAfterTheThreadIsGone() async throws {
        try await withTemporaryDirectoryAsync { dir in
            let watcher = try FileChangeWatcher(path: dir.path("watched")) {}
            #expect(inotifyWatches(on: dir.url.path) == 1)
            await withTaskGroup(of: Int.self) { group in
                for _ in 0..<4 { group.addTask { watcher.stop(); return inotifyWatches(on: dir.url.path) } }
                for await remaining in group { #expect(remaining == 0) }
            }
        }
    }

    @Test func releasingTheWatcherStopsIt() throws {
        try withTemporaryDirectory { dir throws in
            do {
                let watcher = try FileChangeWatcher(path: dir.path("watched")) {}
                #expect(watcher.fileName == "watched")
                #expect(inotifyWatches(on: dir.url.path) == 1)
            }
            #expect(inotifyWatches(on: dir.url.path) == 0)
        }
    }

    @Test func theCallbackMayStopItsWatcher() throws {
        try withTemporaryDirectory { dir throws in
            let path = dir.path("watched")
            let callbacks = Callbacks()
            let slot = WatcherSlot()
            let watcher = try FileChangeWatcher(path: path) {
                slot.watcher.withLock { $0 }?.stop()  // returns at once: this callback is the last
                callbacks.record()
            }
            slot.watcher.withLock { $0 = watcher }
            try appendOnce(path)
            #expect(callbacks.wait(beyond: 0))
            for _ in 0..<10 { try appendOnce(path) }
            watcher.stop()  // from another thread afterwards: returns at once
            slot.watcher.withLock { $0 = nil }
            // The detached thread ends and closes its descriptors once the callback has returned.
            let deadline = ContinuousClock.now + .seconds(60)
            while inotifyWatches(on: dir.url.path) != 0, ContinuousClock.now < deadline { usleep(10_000) }
            #expect(inotifyWatches(on: dir.url.path) == 0)
            #expect(callbacks.count == 1)
        }
    }

    @Test func aRemovedDirectoryIsWatchedAgainWhenItReturns() throws {
        try withTemporaryDirectory { dir throws in
            let directory = dir.path("sub")
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            let path = directory + "/watched"
            try appendOnce(path)
            let callbacks = Callbacks()
            let watcher = try FileChangeWatcher(path: path, retryInterval: .milliseconds(10)) { callbacks.record() }
            defer { watcher.stop() }

            var seen = callbacks.count
            try FileManager.default.removeItem(atPath: directory)
            #expect(callbacks.wait(beyond: seen))
            // Back again: a write after it is reported (by the callback of the new watch, or its event).
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            seen = callbacks.count
            try appendOnce(path)
            #expect(callbacks.wait(beyond: seen))
            seen = callbacks.count
            try appendOnce(path)
            #expect(callbacks.wait(beyond: seen))
        }
    }

    @Test func failuresAreThrownForTheCallerToPoll() throws {
        try withTemporaryDirectory { dir throws in
            #expect {
                _ = try FileChangeWatcher(path: dir.path("missing") + "/file") {}
            } throws: { error in
                guard let failure = error as? FileChangeWatcher.Failure else { return false }
                return failure.reason == .cannotWatchDirectory && failure.errorNumber == ENOENT
                    && failure.description.contains("poll instead")
            }
            #expect(throws: FileChangeWatcher.Failure(reason: .invalidPath, path: dir.path("sub") + "/")) {
                _ = try FileChangeWatcher(path: dir.path("sub") + "/") {}
            }
            try appendOnce(dir.path("plain"))
            #expect {
                _ = try FileChangeWatcher(path: dir.path("plain") + "/file") {}
            } throws: { error in
                (error as? FileChangeWatcher.Failure)?.reason == .cannotWatchDirectory
            }
            // ROTA_FILE_WATCH=off makes the initializer throw `.disabled` (checked on the rule: setting the
            // variable here would reach every test running in this process).
            #expect(FileChangeWatcher.isDisabled(by: ["ROTA_FILE_WATCH": "off"]))
            #expect(!FileChangeWatcher.isDisabled(by: ["ROTA_FILE_WATCH": "on"]))
            #expect(!FileChangeWatcher.isDisabled(by: [:]))
            #expect(FileChangeWatcher.Failure(reason: .disabled, path: "p").description.contains("ROTA_FILE_WATCH=off"))
        }
    }

    @Test func aRelativePathIsTakenFromTheCurrentDirectory() throws {
        let watcher = try FileChangeWatcher(path: "some-file") {}
        defer { watcher.stop() }
        #expect(watcher.directory == FileManager.default.currentDirectoryPath)
        #expect(watcher.fileName == "some-file")
    }
    #else
    @Test func elsewhereTheInitializerThrows() throws {
        #expect(throws: FileChangeWatcher.Failure(reason: .unsupportedPlatform, path: "/tmp/x")) {
            _ = try FileChangeWatcher(path: "/tmp/x") {}
        }
    }
    #endif

    @Test func anInMemoryDatabaseHasNoWAL() throws {
        let db = try Connection(path: ":memory:", options: testOptions())
        #expect(db.walPath == nil)
    }
}

#if os(Linux)
/// `withTemporaryDirectory` for async bodies.
private func withTemporaryDirectoryAsync(_ body: (TemporaryDirectory) async throws -> Void) async throws {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("RotaSQLiteTests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(at: url) }
    try await body(TemporaryDirectory(url: url))
}
#endif
