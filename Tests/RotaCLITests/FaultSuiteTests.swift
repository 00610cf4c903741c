import Foundation
import Testing
import RotaSQLite

// The crash and fault suite: the real `rota` binary, real database files, SIGKILL at random instants.
// Short by default (CI); ROTA_LONG_TESTS=1 runs the long version (N=100,000 items, K=100 kills).

private let longRun = ProcessInfo.processInfo.environment["ROTA_LONG_TESTS"] == "1"

/// The built `rota` binary, next to the test bundle (or ROTA_BINARY).
private let faultRotaBinary: String = {
    if let path = ProcessInfo.processInfo.environment["ROTA_BINARY"] { return path }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
    for _ in 0..<4 where !FileManager.default.fileExists(atPath: directory.appendingPathComponent("rota").path) {
        directory.deleteLastPathComponent()
    }
    return directory.appendingPathComponent("rota").path
}()

/// A finished `rota` run.
private struct FaultRun {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// A temporary directory removed at deinit.
private final class FaultDirectory {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "rota-faults-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// Starts `rota` with `arguments`; output goes to files so a killed process never blocks on a pipe.
private func faultStart(_ arguments: [String], in directory: FaultDirectory, stdin: String? = nil) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: faultRotaBinary)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory.path)
    let tag = UUID().uuidString.prefix(8)
    _ = FileManager.default.createFile(atPath: directory.file("out-\(tag)"), contents: nil)
    _ = FileManager.default.createFile(atPath: directory.file("err-\(tag)"), contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: directory.file("out-\(tag)"))
    process.standardError = FileHandle(forWritingAtPath: directory.file("err-\(tag)"))
    if let stdin {
        let input = directory.file("in-\(tag)")
        _ = FileManager.default.createFile(atPath: input, contents: Data(stdin.utf8))
        process.standardInput = FileHandle(forReadingAtPath: input)
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    process.environment = ProcessInfo.processInfo.environment.merging(["NO_COLOR": "1"]) { $1 }
    try process.run()
    return process
}

/// Runs `rota` to completion (bounded by `timeout`, then SIGKILL).
private func faultRun(_ arguments: [String], in directory: FaultDirectory, stdin: String? = nil,
                      timeout: TimeInterval = 120) throws -> FaultRun {
    let out = Pipe(), err = Pipe()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: faultRotaBinary)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory.path)
    process.standardOutput = out
    process.standardError = err
    process.environment = ProcessInfo.processInfo.environment.merging(["NO_COLOR": "1"]) { $1 }
    let input = Pipe()
    process.standardInput = stdin == nil ? FileHandle.nullDevice : input
    try process.run()
    if let stdin {
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
    }
    let deadline = Date().addingTimeInterval(timeout)
    let outData = DataBox(), errData = DataBox()
    let group = DispatchGroup()
    for (pipe, box) in [(out, outData), (err, errData)] {
        group.enter()
        DispatchQueue.global().async {
            box.data = pipe.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
    }
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    group.wait()
    return FaultRun(status: process.terminationStatus, stdout: String(decoding: outData.data, as: UTF8.self),
                    stderr: String(decoding: errData.data, as: UTF8.self))
}

private final class DataBox: @unchecked Sendable { var data = Data() }

/// Runs each job on a thread of its own: blocking test work (waiting on processes, sleeping between kills)
/// then never holds one of the few cooperative threads that other tests' schedulers need.
final class BlockingWorkExecutor: TaskExecutor {
    static let shared = BlockingWorkExecutor()

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        let thread = Thread { job.runSynchronously(on: executor) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}

/// Runs `body` (which may block) off the cooperative pool, in the same task: `#expect` still reports to the test.
private func offPool(_ body: () throws -> Void) async throws {
    try await withTaskExecutorPreference(BlockingWorkExecutor.shared) {
        try body()
    }
}

/// Reads the database through its own connection.
private func faultQuery(_ path: String, _ sql: String) throws -> [[String]] {
    let db = try Connection(path: path, options: .init(mode: .readOnly, quickCheck: false))
    let statement = try db.prepare(sql)
    var rows: [[String]] = []
    while try statement.step() { rows.append((0..<statement.columnCount).map { statement.string($0) }) }
    return rows
}

private func faultCount(_ path: String, _ sql: String) throws -> Int { Int(try faultQuery(path, sql).first?.first ?? "0") ?? 0 }

@Suite(.serialized) struct FaultSuiteTests {
    /// A batch of N exec tasks, each appending its item to a file; `rota run` killed K times at random.
    private func killLoop(schedulers: Int, items: Int, kills: Int) throws {
        let dir = try FaultDirectory()
        let db = dir.file("rota.db"), output = dir.file("side-effects.txt")
        let lines = (1...items).map { #"{"argv": ["sh", "-c", "echo \#($0) >> \#(output)"]}"# }.joined(separator: "\n")
        let submit = try faultRun(["batch", "submit", "--db", db, "--name", "kill-loop", "-"], in: dir, stdin: lines)
        #expect(submit.status == 0, "\(submit.stderr)")
        let started = Date()
        var runners = try (0..<schedulers).map { _ in
            try faultStart(["run", "--db", db, "--concurrency", "4", "--durability", "normal", "--poll-ms", "20"], in: dir)
        }
        var generator = SystemRandomNumberGenerator()
        for kill in 0..<kills {
            // Long runs space the kills out so real work happens between them (a start opens and checks the file).
            usleep(UInt32.random(in: longRun ? 300_000...2_500_000 : 100_000...400_000, using: &generator))
            let victim = kill % schedulers
            sigkill(runners[victim].processIdentifier)
            runners[victim].waitUntilExit()
            runners[victim] = try faultStart(["run", "--db", db, "--concurrency", "4", "--durability", "normal", "--poll-ms", "20"], in: dir)
        }
        for runner in runners {
            sigkill(runner.processIdentifier)
            runner.waitUntilExit()
        }
        // Finish what is left; the next start releases the dead workers' leases at once.
        let finish = try faultRun(["run", "--db", db, "--until-empty", "--concurrency", "4", "--durability", "normal"], in: dir,
                                  timeout: longRun ? 3_000 : 600)
        #expect(finish.status == 0, "\(finish.stderr)")
        let elapsed = Date().timeIntervalSince(started)

        #expect(try faultQuery(db, "PRAGMA integrity_check") == [["ok"]])
        #expect(try faultCount(db, "SELECT count(*) FROM tasks WHERE batch_id IS NOT NULL") == items)
        #expect(try faultCount(db, "SELECT count(*) FROM tasks WHERE batch_id IS NOT NULL AND state = 'succeeded'") == items)
        // Exactly one succeeded attempt per task, recorded once.
        #expect(try faultCount(db, """
            SELECT count(*) FROM tasks t WHERE t.batch_id IS NOT NULL
            AND (SELECT count(*) FROM attempts a WHERE a.task_id = t.id AND a.outcome = 'succeeded') != 1
            """) == 0)
        // Every side effect happened; duplicates only for tasks in flight at a kill (at least once).
        let seen = (try? String(contentsOfFile: output, encoding: .utf8))?.split(separator: "\n").compactMap { Int($0) } ?? []
        let missing = Set(1...items).subtracting(seen)
        #expect(missing.isEmpty, "\(missing.count) items have no side effect, e.g. \(missing.sorted().prefix(10))")
        let duplicates = seen.count - Set(seen).count
        let lost = try faultCount(db, "SELECT count(*) FROM attempts WHERE outcome = 'lost'")
        #expect(duplicates <= lost, "duplicated side effects (\(duplicates)) are at most the attempts lost at kills (\(lost))")
        #expect(lost <= kills * 4 + schedulers * 4)
        print("kill-loop schedulers=\(schedulers) items=\(items) kills=\(kills) lost_attempts=\(lost) duplicated_side_effects=\(duplicates) seconds=\(String(format: "%.1f", elapsed))")
    }

    @Test func aSchedulerKilledAtRandomLosesNothingAndDoublesNoResult() async throws {
        try await offPool {
            try killLoop(schedulers: 1, items: longRun ? 100_000 : 2_000, kills: longRun ? 100 : 10)
        }
    }

    @Test func twoSchedulersKilledIndependentlyLoseNothingAndDoubleNoResult() async throws {
        try await offPool {
            try killLoop(schedulers: 2, items: longRun ? 50_000 : 1_000, kills: longRun ? 60 : 8)
        }
    }

    @Test func aBatchSubmissionKilledHalfwayCompletesOnResubmissionWithoutDuplicates() async throws {
        try await offPool {
            let dir = try FaultDirectory()
            let db = dir.file("rota.db"), file = dir.file("items.jsonl")
            let items = longRun ? 1_000_000 : 100_000
            var text = ""
            text.reserveCapacity(items * 40)
            for item in 1...items { text += #"{"name": "convert", "payload": {"item": \#(item)}}"# + "\n" }
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            var killedPartway = false
            for delay: UInt32 in [300_000, 600_000, 1_200_000] where !killedPartway {
                let submit = try faultStart(["batch", "submit", "--db", db, "--name", "convert", file], in: dir)
                usleep(delay)
                if submit.isRunning {
                    sigkill(submit.processIdentifier)
                    submit.waitUntilExit()
                    let partial = try? faultCount(db, "SELECT count(*) FROM tasks")
                    killedPartway = (partial ?? 0) < items
                } else {
                    submit.waitUntilExit()
                }
            }
            let again = try faultRun(["batch", "submit", "--db", db, "--name", "convert", file], in: dir)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(try faultCount(db, "SELECT count(*) FROM tasks") == items)
            #expect(try faultCount(db, "SELECT count(DISTINCT batch_item) FROM tasks") == items)
            #expect(try faultQuery(db, "SELECT total, sealed FROM batches") == [["\(items)", "1"]])
            #expect(try faultQuery(db, "PRAGMA integrity_check") == [["ok"]])
        }
    }

    @Test func aBadLineRejectsTheWholeSubmissionNamingFileAndLine() async throws {
        try await offPool {
            let dir = try FaultDirectory()
            let db = dir.file("rota.db"), file = dir.file("items.jsonl")
            try """
                {"name": "ok", "payload": {}}
                {"name": "ok", "payload": {"a": 1,}}
                {"argv": []}
                {"nmae": "typo"}
                """.write(toFile: file, atomically: true, encoding: .utf8)
            let result = try faultRun(["batch", "submit", "--db", db, "--name", "bad", file], in: dir)
            #expect(result.status == 2)
            #expect(result.stderr.contains("items.jsonl:2:"))
            #expect(result.stderr.contains("items.jsonl:3:"))
            #expect(result.stderr.contains("items.jsonl:4:") && result.stderr.contains("nmae"))
            let written = FileManager.default.fileExists(atPath: db) ? try faultCount(db, "SELECT count(*) FROM tasks") : 0
            #expect(written == 0)
        }
    }

    @Test func aCommandThatCrashesOrHangsFailsItsAttemptAndTheSchedulerGoesOn() async throws {
        try await offPool {
            let dir = try FaultDirectory()
            let db = dir.file("rota.db")
            let lines = [
                #"{"argv": ["sh", "-c", "kill -9 $$"], "key": "crash"}"#,
                #"{"argv": ["sleep", "600"], "key": "hang"}"#,
                #"{"argv": ["sh", "-c", "echo fine"], "key": "fine"}"#,
            ].joined(separator: "\n")
            #expect(try faultRun(["batch", "submit", "--db", db, "--name", "faults", "--max-attempts", "1", "-"], in: dir, stdin: lines).status == 0)
            // The hanging command gets a timeout of one second.
            let db2 = try Connection(path: db, options: .init(quickCheck: false))
            try db2.execute("UPDATE tasks SET timeout_ms = 1000 WHERE batch_item = 'hang'")
            let run = try faultRun(["run", "--db", db, "--until-empty", "--grace", "1"], in: dir, timeout: 120)
            #expect(run.status == 0, "\(run.stderr)")
            let states = try faultQuery(db, "SELECT batch_item, state FROM tasks ORDER BY batch_item")
            #expect(states == [["crash", "dead"], ["fine", "succeeded"], ["hang", "dead"]])
            let outcomes = try faultQuery(db, "SELECT t.batch_item, a.outcome, coalesce(a.error, '') FROM attempts a JOIN tasks t ON t.id = a.task_id ORDER BY t.batch_item")
            #expect(outcomes.first { $0[0] == "hang" }?[1] == "timed_out")
            #expect(outcomes.first { $0[0] == "crash" }?[1] == "failed")
            #expect(outcomes.first { $0[0] == "crash" }?[2].isEmpty == false)
        }
    }

    @Test func aDatabaseLockedByAnotherProcessGivesAClearErrorAndChangesNothing() async throws {
        try await offPool {
            let dir = try FaultDirectory()
            let db = dir.file("rota.db")
            #expect(try faultRun(["migrate", "--db", db], in: dir).status == 0)
            let holder = try Connection(path: db, options: .init(quickCheck: false))
            try holder.execute("BEGIN IMMEDIATE")
            let result = try faultRun(["batch", "submit", "--db", db, "--name", "x", "-"], in: dir, stdin: #"{"argv": ["true"]}"#, timeout: 120)
            try holder.execute("ROLLBACK")
            #expect(result.status == 1)
            #expect(result.stderr.contains("locked"))
            #expect(try faultCount(db, "SELECT count(*) FROM batches") == 0)
        }
    }

    @Test func aCorruptFileAndANewerDatabaseAreRefusedAndLeftAsTheyWere() async throws {
        try await offPool {
            let dir = try FaultDirectory()
            let junk = dir.file("junk.db")
            let bytes = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            try bytes.write(to: URL(fileURLWithPath: junk))
            let refused = try faultRun(["run", "--db", junk, "--until-empty"], in: dir)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("not a SQLite database"))
            #expect(try Data(contentsOf: URL(fileURLWithPath: junk)) == bytes)

            let newer = dir.file("newer.db")
            #expect(try faultRun(["migrate", "--db", newer], in: dir).status == 0)
            do {  // closed (and checkpointed) before the bytes are taken
                let db = try Connection(path: newer, options: .init(quickCheck: false))
                try db.execute("INSERT INTO rota_migrations(version, name, checksum, applied_at) VALUES (99, 'future', 'x', 0)")
            }
            let before = try Data(contentsOf: URL(fileURLWithPath: newer))
            let result = try faultRun(["batch", "submit", "--db", newer, "--name", "x", "-"], in: dir, stdin: #"{"argv": ["true"]}"#)
            #expect(result.status == 1)
            #expect(result.stderr.contains("newer"))
            #expect(try Data(contentsOf: URL(fileURLWithPath: newer)) == before)
        }
    }

    @Test func aPerSecondScheduleKilledAndRestartedHasExactlyOneTaskPerFireInstant() async throws {
        try await offPool {
            let dir = try FaultDirectory()
            let db = dir.file("rota.db")
            try FileManager.default.createDirectory(atPath: dir.file("schedules"), withIntermediateDirectories: true)
            try "* * * * * *  tick  missed=all  exec true\n".write(toFile: dir.file("schedules/tick.cron"), atomically: true, encoding: .utf8)
            for _ in 0..<(longRun ? 20 : 4) {
                let runner = try faultStart(["run", "--db", db, "--schedules", dir.file("schedules"), "--durability", "normal"], in: dir)
                usleep(UInt32.random(in: 700_000...1_600_000))
                sigkill(runner.processIdentifier)
                runner.waitUntilExit()
                usleep(300_000)
            }
            // However slow the machine (the kills above may all come before a start has fired), one more run
            // fires until there are three (waited for, not timed), then is killed like the others.
            let last = try faultStart(["run", "--db", db, "--schedules", dir.file("schedules"), "--durability", "normal"], in: dir)
            let deadline = Date().addingTimeInterval(300)  // a guard against a hang, not a measure
            while (try? faultCount(db, "SELECT count(*) FROM tasks WHERE schedule = 'tick'")) ?? 0 < 3, Date() < deadline {
                usleep(50_000)
            }
            sigkill(last.processIdentifier)
            last.waitUntilExit()
            let fires = try faultCount(db, "SELECT count(*) FROM tasks WHERE schedule = 'tick'")
            #expect(fires >= 3)
            #expect(try faultCount(db, "SELECT count(DISTINCT fire_at) FROM tasks WHERE schedule = 'tick'") == fires)
            // Fire instants are whole seconds.
            #expect(try faultCount(db, "SELECT count(*) FROM tasks WHERE schedule = 'tick' AND fire_at % 1000 != 0") == 0)
        }
    }

    @Test func badScheduleFilesStopAStartAndAReloadKeepsTheLastGoodSchedules() async throws {
        try await offPool {
            let dir = try FaultDirectory()
            let db = dir.file("rota.db"), schedules = dir.file("schedules")
            try FileManager.default.createDirectory(atPath: schedules, withIntermediateDirectories: true)
            try "* * * * * *  tick  exec true\n".write(toFile: schedules + "/a.cron", atomically: true, encoding: .utf8)
            try "61 * * * *  broken  exec true\n".write(toFile: schedules + "/b.cron", atomically: true, encoding: .utf8)
            // At start-up, any error is fatal and names file:line:column.
            let refused = try faultRun(["run", "--db", db, "--schedules", schedules], in: dir, timeout: 120)
            #expect(refused.status == 2)
            #expect(refused.stderr.contains("b.cron:1:1"))
            #expect(!FileManager.default.fileExists(atPath: db))  // refused before anything was created
            try FileManager.default.removeItem(atPath: schedules + "/b.cron")
            let runner = try faultStart(["run", "--db", db, "--schedules", schedules, "--durability", "normal"], in: dir)
            defer { sigkill(runner.processIdentifier); runner.waitUntilExit() }
            func fires(_ name: String) throws -> Int {
                try faultCount(db, "SELECT count(*) FROM tasks WHERE schedule = '\(name)'")
            }
            func waitFor(_ condition: () throws -> Bool) throws -> Bool {
                let deadline = Date().addingTimeInterval(300)  // a guard against a hang, not a measure
                while Date() < deadline { if (try? condition()) == true { return true }; usleep(50_000) }
                return false
            }
            #expect(try waitFor { try fires("tick") >= 1 })
            // A reload with a bad file changes nothing: tick keeps firing.
            try "* * * * * *  tock  exec true\nnot a schedule line\n".write(toFile: schedules + "/b.cron", atomically: true, encoding: .utf8)
            kill(runner.processIdentifier, SIGHUP)
            let before = try fires("tick")
            #expect(try waitFor { try fires("tick") >= before + 2 })
            #expect(try fires("tock") == 0)
            // A good reload adds the new schedule, and the scheduler serves the new queue it enqueues into
            // (without --queue, `rota run` serves default and every queue its schedules use).
            #expect(try faultCount(db, "SELECT count(*) FROM workers WHERE stopped_at IS NULL AND queues LIKE '%reports%'") == 0)
            try "QUEUE=reports\n* * * * * *  tock  exec true\n".write(toFile: schedules + "/b.cron", atomically: true, encoding: .utf8)
            kill(runner.processIdentifier, SIGHUP)
            #expect(try waitFor { try fires("tock") >= 1 })
            #expect(try waitFor {
                try faultCount(db, "SELECT count(*) FROM tasks WHERE schedule = 'tock' AND queue = 'reports' AND state = 'succeeded'") >= 1
            })
            #expect(try faultCount(db, "SELECT count(*) FROM workers WHERE stopped_at IS NULL AND queues LIKE '%reports%'") == 1)
            #expect(runner.isRunning)
        }
    }
}

/// SIGKILL, by name, so a reader sees what is sent.
private func sigkill(_ pid: Int32) { kill(pid, SIGKILL) }
