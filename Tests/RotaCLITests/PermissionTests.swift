import Foundation
import RotaSQLiteStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Secrets stay private: a database rota creates is its owner's only (0600, and so are its -wal and -shm),
/// and `rota check` warns about a database others can read or a schedules directory others can write.
@Suite struct PermissionTests {
    private func mode(_ path: String) -> UInt32? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return UInt32(status.st_mode) & 0o777
    }

    @Test func aDatabaseRotaCreatesIsTheOwnersOnlyWhateverTheUmask() throws {
        for umask in ["022", "000", "077"] {
            let db = try TempDatabase()
            let shell = Process()
            shell.executableURL = URL(fileURLWithPath: "/bin/sh")
            shell.arguments = ["-c", "umask \(umask) && exec \"$0\" \"$@\"", Rota.binary.path,
                               "enqueue", "--db", db.path, "--exec", "--", "true"]
            shell.standardOutput = FileHandle.nullDevice
            shell.standardError = FileHandle.nullDevice
            try shell.run()
            shell.waitUntilExit()
            #expect(shell.terminationStatus == 0)
            #expect(mode(db.path) == 0o600, "umask \(umask): mode \(String(mode(db.path) ?? 0, radix: 8))")
        }
    }

    @Test func itsWalAndShmFilesGetTheSameMode() async throws {
        let db = try TempDatabase()
        let store = try SQLiteTaskStore(path: db.path)
        _ = try store.enqueueSync([.init(name: "exec", payload: #"{"argv":["true"]}"#)])
        // While the store is open, SQLite keeps its WAL and shared-memory index beside the file.
        #expect(mode(db.path) == 0o600)
        #expect(mode(db.path + "-wal") == 0o600)
        #expect(mode(db.path + "-shm") == 0o600)
        withExtendedLifetime(store) {}
    }

    @Test func anExistingDatabaseKeepsItsMode() async throws {
        let db = try TempDatabase()
        _ = try await db.enqueue("--exec", "--", "true")
        chmod(db.path, 0o640)
        _ = try await db.enqueue("--exec", "--", "true")
        #expect(mode(db.path) == 0o640)
    }

    @Test func checkWarnsAboutADatabaseOthersCanReadAndKeepsItsExitStatus() async throws {
        let db = try TempDatabase()
        _ = try await db.enqueue("--exec", "--", "true")
        let quiet = try await db.rota("check")
        #expect(quiet.status == 0 && !quiet.stderr.contains("warning"), "\(quiet)")

        chmod(db.path, 0o644)
        let loud = try await db.rota("check")
        #expect(loud.status == 0, "\(loud)")
        #expect(loud.stderr.contains("rota: warning: \(db.path) is readable by group and others (mode 0644); it holds "
            + "commands, payloads and their output: chmod 600 \(db.path)"), "\(loud)")
        let json = try await db.rota("check", "--json")
        #expect(json.status == 0, "\(json)")
        let warnings = try #require(try json.object()["warnings"] as? [String])
        // The first, about the file itself; SQLite gave any -wal or -shm created since the file's mode, and they
        // are named too.
        #expect(warnings.first?.hasPrefix("\(db.path) is readable by group and others (mode 0644)") == true, "\(json)")
        #expect(warnings.dropFirst().allSatisfy { $0.hasPrefix(db.path + "-wal is") || $0.hasPrefix(db.path + "-shm is") }, "\(json)")

        chmod(db.path, 0o660)
        let group = try await db.rota("check")
        #expect(group.stderr.contains("is readable and writable by group (mode 0660)"), "\(group)")
    }

    @Test func checkWarnsAboutASchedulesDirectoryOrFileOthersCanWrite() async throws {
        let db = try TempDatabase()
        _ = try await db.enqueue("--exec", "--", "true")
        let schedules = db.directory.appendingPathComponent("schedules").path
        try FileManager.default.createDirectory(atPath: schedules, withIntermediateDirectories: true)
        try "@hourly  tick  exec true\n".write(toFile: schedules + "/a.cron", atomically: true, encoding: .utf8)
        chmod(schedules, 0o755)
        chmod(schedules + "/a.cron", 0o644)
        let fine = try await db.rota("check", "--schedules", schedules)
        #expect(fine.status == 0 && !fine.stderr.contains("warning"), "\(fine)")

        chmod(schedules, 0o777)
        chmod(schedules + "/a.cron", 0o664)
        let loud = try await db.rota("check", "--schedules", schedules)
        #expect(loud.status == 0, "\(loud)")
        #expect(loud.stderr.contains("rota: warning: \(schedules) is writable by group and others (mode 0777); whoever "
            + "can write there chooses what rota runs: chmod go-w \(schedules)"), "\(loud)")
        #expect(loud.stderr.contains("rota: warning: \(schedules)/a.cron is writable by group (mode 0664)"), "\(loud)")

        let missing = try await db.rota("check", "--schedules", schedules + "/nope")
        #expect(missing.status == 2, "\(missing)")
    }
}
