import Foundation
import Rota
import Testing
import RotaSQLiteStore

/// End-to-end: the real `rota` binary against real database files.
@Suite("rota run", .serialized)
struct RunCommandTests {
    /// The built `rota` next to the test bundle (the products directory).
    static let binary: String = {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("rota").path,
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("rota").path,
            Bundle.main.bundleURL.appendingPathComponent("rota").path,
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent(".build/debug/rota").path,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }()

    final class Workspace: Sendable {
        let directory: URL
        var db: String { directory.appendingPathComponent("rota.db").path }
        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("rota-run-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        func store() throws -> SQLiteTaskStore {
            try SQLiteTaskStore(path: db, configuration: .init(durability: .normal, quickCheck: false))
        }
        deinit { try? FileManager.default.removeItem(at: directory) }
    }

    /// Where a process's exit status lands, and who waits for it.
    final class ExitBox: @unchecked Sendable {
        private let lock = NSLock()
        private var status: Int32?
        private var waiters: [CheckedContinuation<Int32, Never>] = []

        func set(_ value: Int32) {
            lock.lock()
            status = value
            let waiting = waiters
            waiters = []
            lock.unlock()
            for waiter in waiting { waiter.resume(returning: value) }
        }

        func wait() async -> Int32 {
            await withCheckedContinuation { continuation in
                lock.lock()
                if let status {
                    lock.unlock()
                    continuation.resume(returning: status)
                } else {
                    waiters.append(continuation)
                    lock.unlock()
                }
            }
        }
    }

    /// A started `rota` process; `exit()` awaits its end without blocking a cooperative thread.
    final class RotaProcess: @unchecked Sendable {
        let process: Process
        private let ended = ExitBox()
        let stderrPath: String

        init(_ arguments: [String], in workspace: Workspace, name: String = "rota") throws {
            stderrPath = workspace.path("\(name)-\(UUID().uuidString.prefix(6)).stderr")
            _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
            process = Process()
            process.executableURL = URL(fileURLWithPath: RunCommandTests.binary)
            process.arguments = arguments
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
            process.standardOutput = FileHandle.nullDevice
            let ended = self.ended
            process.terminationHandler = { process in ended.set(process.terminationStatus) }
            try process.run()
        }

        func exit() async -> Int32 { await ended.wait() }

        func signal(_ number: Int32) { kill(process.processIdentifier, number) }
        var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    }

    struct TimedOut: Error { var what: String }

    /// Awaits `operation` for at most `limit`.
    static func within<T: Sendable>(_ limit: Duration, _ what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await operation() }
            group.addTask { try await Task.sleep(for: limit); return nil }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw TimedOut(what: what) }
            return value
        }
    }

    /// Polls the database until `condition` holds (the event is in another process: polling is the only way).
    static func waitUntil(_ what: String, limit: Duration = .seconds(300), _ condition: @escaping @Sendable () async throws -> Bool) async throws {
        try await within(limit, what) {
            while try await !condition() { try await Task.sleep(for: .milliseconds(20)) }
        }
    }

    static func exec(_ argv: [String], env: [String: String]? = nil, maxAttempts: Int = 3) -> TaskSpec {
        let payload = String(decoding: try! JSONEncoder().encode(ExecCommand(argv: argv, env: env)), as: UTF8.self)
        return TaskSpec(name: "exec", payload: payload, maxAttempts: maxAttempts)
    }

    // MARK: Tests

    @Test func untilEmptyRunsEveryExecTaskAndExitsZero() async throws {
        let workspace = try Workspace()
        let store = try workspace.store()
        let ids = try await store.enqueue([
            Self.exec(["sh", "-c", "echo hello"]),
            Self.exec(["sh", "-c", "echo nope >&2; exit 4"], maxAttempts: 1),
        ]).map(\.id)
        let rota = try RotaProcess(["run", "--db", workspace.db, "--until-empty", "--durability", "normal"], in: workspace)
        let status = try await Self.within(.seconds(300), "rota run to exit") { await rota.exit() }
        #expect(status == 0, "stderr: \(rota.stderr)")
        #expect(try await store.task(ids[0])?.state == .succeeded)
        #expect(try await store.task(ids[0])?.result?.contains(#""stdout":"hello\n""#) == true)
        #expect(try await store.task(ids[1])?.state == .dead)
        #expect(try await store.attempts(of: ids[1]).first?.error?.contains("exit status 4") == true)
    }

    @Test func aSchedulerKilledWithSIGKILLAndRestartedFinishesEveryTaskWithOneSuccess() async throws {
        let workspace = try Workspace()
        let store = try workspace.store()
        let count = ProcessInfo.processInfo.environment["ROTA_LONG_TESTS"] == "1" ? 2_000 : 150
        let log = workspace.path("side-effects.log")
        // The second half waits for a gate that opens only after the kill, so the first run cannot finish
        // everything before it is killed, however fast the machine (or slow this test's polling).
        let gate = workspace.path("gate")
        let specs = (0..<count).map { item in
            Self.exec(["sh", "-c", "echo $ITEM >> \(log); sleep 0.02; if [ $ITEM -ge \(count / 2) ]; then while [ ! -e \(gate) ]; do sleep 0.01; done; fi"],
                      env: ["ITEM": "\(item)"], maxAttempts: 5)
        }
        let ids = try await store.enqueue(specs).map(\.id)
        let first = try RotaProcess(["run", "--db", workspace.db, "--concurrency", "8"], in: workspace, name: "first")
        try await Self.waitUntil("some tasks to succeed") {
            try await store.stats(now: Date()).states[.succeeded, default: 0] >= count / 4
        }
        first.signal(SIGKILL)
        #expect(await first.exit() == SIGKILL)
        let doneAtKill = try await store.stats(now: Date()).states[.succeeded, default: 0]
        #expect(doneAtKill < count)
        #expect(FileManager.default.createFile(atPath: gate, contents: nil))

        let second = try RotaProcess(["run", "--db", workspace.db, "--concurrency", "8", "--until-empty"], in: workspace, name: "second")
        let status = try await Self.within(.seconds(600), "the restarted rota run to finish") { await second.exit() }
        #expect(status == 0, "stderr: \(second.stderr)")
        for id in ids {
            let attempts = try await store.attempts(of: id)
            #expect(attempts.filter { $0.outcome == .succeeded }.count == 1, "task \(id): \(attempts.map(\.outcome))")
            #expect(try await store.task(id)?.state == .succeeded)
        }
        #expect(try store.integrityCheck() == ["ok"])
        // At least once: every item ran; duplicates only for the attempts in flight at the kill.
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(Set(lines).count == count)
        #expect(lines.count - count <= 8)
    }

    /// The quick command finishes once the drain has begun (a file it waits for, created when `rota run`
    /// logs that it drains), so it finishes within the grace however slowly the machine runs it: the grace
    /// (10 s) is only the margin for an `echo`. The slow one is terminated when the grace ends.
    @Test func sigtermDrainsRunningTasksAndExitsZero() async throws {
        let workspace = try Workspace()
        let store = try workspace.store()
        let started = workspace.path("started")
        let go = workspace.path("go")
        let quick = try await store.enqueue(Self.exec(["sh", "-c", "touch \(started)-q; while [ ! -e \(go) ]; do sleep 0.01; done; echo done"])).id
        let slow = try await store.enqueue(Self.exec(["sh", "-c", "touch \(started)-s; sleep 3600"], maxAttempts: 1)).id
        let rota = try RotaProcess(["run", "--db", workspace.db, "--concurrency", "4", "--grace", "10", "--log-level", "debug"], in: workspace)
        try await Self.waitUntil("both commands to start") {
            FileManager.default.fileExists(atPath: "\(started)-q") && FileManager.default.fileExists(atPath: "\(started)-s")
        }
        rota.signal(SIGTERM)
        try await Self.waitUntil("the drain to begin") { rota.stderr.contains("scheduler draining") }
        #expect(FileManager.default.createFile(atPath: go, contents: nil))
        let status = try await Self.within(.seconds(300), "rota run to drain and exit") { await rota.exit() }
        #expect(status == 0, "stderr: \(rota.stderr)")
        // The quick one finished within the grace; the slow one was terminated and handed back.
        #expect(try await store.task(quick)?.state == .succeeded)
        let handedBack = try #require(try await store.task(slow))
        #expect(handedBack.state == .scheduled)
        #expect(try await store.attempts(of: slow).map(\.outcome) == [.cancelled])
        #expect(try await store.workers().allSatisfy { $0.stoppedAt != nil })
    }

    /// The second signal comes once the first has started the drain (seen in the log, not guessed with a
    /// sleep). An hour of grace: only the second signal explains an exit within the guard.
    @Test(arguments: [(SIGTERM, SIGINT), (SIGINT, SIGTERM), (SIGTERM, SIGTERM)])
    func aSecondSignalEndsTheGraceAtOnce(first: Int32, second: Int32) async throws {
        let workspace = try Workspace()
        let store = try workspace.store()
        let started = workspace.path("started")
        let slow = try await store.enqueue(Self.exec(["sh", "-c", "touch \(started); sleep 3600"])).id
        let rota = try RotaProcess(["run", "--db", workspace.db, "--grace", "3600", "--log-level", "debug"], in: workspace)
        try await Self.waitUntil("the command to start") { FileManager.default.fileExists(atPath: started) }
        rota.signal(first)
        try await Self.waitUntil("the drain to begin") { rota.stderr.contains("scheduler draining") }
        rota.signal(second)
        let status = try await Self.within(.seconds(600), "rota run to exit after the second signal") { await rota.exit() }
        #expect(status == 0, "stderr: \(rota.stderr)")
        #expect(try await store.task(slow)?.state == .scheduled)
        #expect(try await store.attempts(of: slow).map(\.outcome) == [.cancelled])
    }

    /// With schedules, the service group stops both: SIGTERM drains the scheduler, then the schedules stop
    /// firing, and it exits 0 with its worker stopped.
    @Test func sigtermStopsTheSchedulesToo() async throws {
        let workspace = try Workspace()
        let store = try workspace.store()
        let schedules = workspace.path("schedules")
        try FileManager.default.createDirectory(atPath: schedules, withIntermediateDirectories: true)
        try "* * * * * *  tick  exec true\n".write(toFile: schedules + "/tick.cron", atomically: true, encoding: .utf8)
        let rota = try RotaProcess(["run", "--db", workspace.db, "--schedules", schedules, "--durability", "normal"], in: workspace)
        try await Self.waitUntil("a fire to run") {
            try await !store.list(TaskFilter(states: [.succeeded], schedule: "tick")).isEmpty
        }
        rota.signal(SIGTERM)
        let status = try await Self.within(.seconds(300), "rota run to stop") { await rota.exit() }
        #expect(status == 0, "stderr: \(rota.stderr)")
        #expect(try await store.workers().allSatisfy { $0.stoppedAt != nil })
        #expect(!rota.stderr.contains("error"), "stderr: \(rota.stderr)")
    }

    @Test func twoRunProcessesOnOneFileNeverRunAnAttemptTwice() async throws {
        let workspace = try Workspace()
        let store = try workspace.store()
        let count = ProcessInfo.processInfo.environment["ROTA_LONG_TESTS"] == "1" ? 5_000 : 300
        let log = workspace.path("runs.log")
        let ids = try await store.enqueue((0..<count).map { item in
            Self.exec(["sh", "-c", "echo $ITEM >> \(log)"], env: ["ITEM": "\(item)"])
        }).map(\.id)
        let runs = try (0..<2).map { index in
            try RotaProcess(["run", "--db", workspace.db, "--concurrency", "4", "--until-empty", "--durability", "normal"],
                            in: workspace, name: "worker\(index)")
        }
        for run in runs {
            let status = try await Self.within(.seconds(600), "both rota run processes to finish") { await run.exit() }
            #expect(status == 0, "stderr: \(run.stderr)")
        }
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == count)
        #expect(Set(lines).count == count)
        for id in ids { #expect(try await store.attempts(of: id).map(\.outcome) == [.succeeded]) }
        let workers = try await store.workers()
        #expect(workers.count == 2)
    }

    @Test func aSchedulesDirectoryWithAnErrorIsRefusedWithExitTwo() async throws {
        let workspace = try Workspace()
        let schedules = workspace.path("schedules")
        try FileManager.default.createDirectory(atPath: schedules, withIntermediateDirectories: true)
        try "61 * * * *  broken  exec true\n".write(toFile: schedules + "/bad.cron", atomically: true, encoding: .utf8)
        let rota = try RotaProcess(["run", "--db", workspace.db, "--schedules", schedules], in: workspace)
        let status = try await Self.within(.seconds(300), "rota run to refuse") { await rota.exit() }
        #expect(status == 2)
        #expect(rota.stderr.contains("bad.cron"))
    }

    @Test func badOptionsAreUsageErrors() async throws {
        let workspace = try Workspace()
        let rota = try RotaProcess(["run", "--db", workspace.db, "--concurrency", "0"], in: workspace)
        #expect(try await Self.within(.seconds(300), "rota run to refuse") { await rota.exit() } == 2)
        #expect(rota.stderr.contains("--concurrency"))
        let purge = try RotaProcess(["run", "--db", workspace.db, "--purge-after", "3x"], in: workspace)
        #expect(try await Self.within(.seconds(300), "rota run to refuse") { await purge.exit() } == 2)
        #expect(purge.stderr.contains("--purge-after: '3x' is not a duration"), "\(purge.stderr)")
        #expect(!FileManager.default.fileExists(atPath: workspace.db))
    }
}
