import Foundation
import Synchronization
import Testing
@testable import Rota
@testable import RotaSQLiteStore

@Suite("Executors")
struct ExecutorTests {
    @Test(arguments: StoreKind.all) func blockingHandlersRunOnThePoolUpToItsThreadsAndNoFurther(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(queues: ["default": 8], threads: 2, untilEmpty: true),
                                  logger: testLogger)
        let gauge = ConcurrencyGauge()
        let bothThreads = ThreadRendezvous(count: 2)  // the first two meet, so two run at once on any machine
        try scheduler.registerBlocking("block") { (_: Empty, _) in
            gauge.enter()
            defer { gauge.leave() }
            #expect(bothThreads.arrive())
            usleep(30_000)  // blocks its thread, as blocking work does; a chance for a third to (wrongly) start
            return Empty()
        }
        for _ in 0..<10 { try await scheduler.enqueue("block") }
        try await runUntilEmpty(scheduler)
        #expect(gauge.total == 10)
        #expect(gauge.peak == 2)
    }

    /// A pool with as many free slots as the queue must not take every slot of the queue: the async
    /// handlers' tasks get the slots the pool's request did not use (before, they were never claimed when
    /// the pool had at least as many free slots as the queue, e.g. the README's set-up on 4 cores or more).
    @Test(arguments: StoreKind.all) func asyncTasksRunWhenThePoolCouldTakeEveryQueueSlot(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(queues: ["default": 2], threads: 4, untilEmpty: true),
                                  logger: testLogger)
        try scheduler.registerBlocking("block") { (_: Empty, _) in Empty() }
        try scheduler.registerExec()
        let ran = ConcurrencyGauge()
        try scheduler.register("quick") { (_: Empty, _) in
            ran.enter()
            ran.leave()
            return Empty()
        }
        for _ in 0..<10 { try await scheduler.enqueue("quick") }
        try await runUntilEmpty(scheduler)
        #expect(ran.total == 10)
    }

    /// Two queues share the thread pool: a backlog in one must not take every thread while the other has
    /// due work (before, the first queue's request took the whole pool on every turn).
    @Test(arguments: StoreKind.all) func queuesShareThePoolsSlots(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(queues: ["a": 4, "b": 4], threads: 2),
                                  logger: testLogger)
        let release = DispatchSemaphore(value: 0)
        let holding = DispatchSemaphore(value: 0)
        let marked = Event()
        let sawAHoldRunning = Mutex(false)
        try scheduler.registerBlocking("hold", queue: "a") { (_: Empty, _) in
            holding.signal()
            release.wait()
            return Empty()
        }
        try scheduler.registerBlocking("mark", queue: "b") { (_: Empty, _) in
            // Queue a's share of the pool was claimed in the same turn: one of its tasks runs beside this one
            // (waited for as an event; the limit only guards against a hang).
            sawAHoldRunning.withLock { $0 = holding.wait(timeout: .now() + .seconds(600)) == .success }
            marked.fulfill()
            return Empty()
        }
        for _ in 0..<4 { try await scheduler.enqueue("hold") }
        try await scheduler.enqueue("mark")
        let running = RunningScheduler(scheduler)
        try await within(.seconds(600), "queue b's task while queue a has a backlog") { await marked.wait() }
        // Queue b's task ran beside one of queue a's (before, queue a's request took both threads on every turn
        // and the wait above timed out).
        #expect(sawAHoldRunning.withLock { $0 })
        for _ in 0..<4 { release.signal() }
        try await running.stop()
    }

    @Test(arguments: StoreKind.all) func blockingHandlersDoNotDelayAsyncOnes(_ kind: StoreKind) async throws {
        let db = try kind.database()
        // More blocked threads than this machine has cores: on the cooperative pool they would starve it.
        let threads = ProcessInfo.processInfo.activeProcessorCount + 2
        let scheduler = Scheduler(
            store: try db.store(),
            configuration: testConfiguration(queues: ["blocking": threads, "default": 4], threads: threads), logger: testLogger)
        let release = DispatchSemaphore(value: 0)
        let allBlocked = Event(count: threads)
        let asyncDone = Event(count: 20)
        try scheduler.registerBlocking("block", queue: "blocking") { (_: Empty, _) in
            allBlocked.fulfill()
            release.wait()
            return Empty()
        }
        try scheduler.register("quick") { (_: Empty, _) in
            try await Task.sleep(for: .milliseconds(1))
            asyncDone.fulfill()
            return Empty()
        }
        for _ in 0..<threads { try await scheduler.enqueue("block") }
        let running = RunningScheduler(scheduler)
        try await within(.seconds(600), "every blocking handler to hold its thread") { await allBlocked.wait() }
        for _ in 0..<20 { try await scheduler.enqueue("quick") }
        try await within(.seconds(600), "the async handlers while the pool threads are blocked") { await asyncDone.wait() }
        for _ in 0..<threads { release.signal() }
        try await running.stop()
    }

    @Test(arguments: StoreKind.all) func aHandlerCanSendBlockingWorkAndCommandsToThePools(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        struct Out: Codable, Sendable { var onPoolThread: Bool; var echoed: String }
        try scheduler.register("mixed") { (_: Empty, context) in
            let onPool = try await context.runBlocking { Thread.current.name?.contains("NIOThreadPool") ?? false || !Thread.isMainThread }
            let result = try await context.runCommand(["sh", "-c", "printf hi"])
            return Out(onPoolThread: onPool, echoed: result.stdout)
        }
        let id = try await scheduler.enqueue("mixed")
        try await runUntilEmpty(scheduler)
        let task = try #require(try await scheduler.task(id))
        #expect(task.state == .succeeded)
        #expect(task.result == #"{"echoed":"hi","onPoolThread":true}"#)
    }

    // MARK: exec

    private func exec(_ argv: [String], env: [String: String]? = nil, cwd: String? = nil) -> TaskSpec {
        let command = ExecCommand(argv: argv, env: env, cwd: cwd)
        let payload = String(decoding: try! JSONEncoder().encode(command), as: UTF8.self)
        return TaskSpec(name: "exec", payload: payload, maxAttempts: 1)
    }

    @Test(arguments: StoreKind.all) func execRecordsExitStatusStdoutAndStderr(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.registerExec()
        let ok = try await scheduler.enqueue(exec(["sh", "-c", "echo out; echo err >&2; echo $GREETING; pwd"],
                                                  env: ["GREETING": "hej"], cwd: db.directory.path)).id
        let bad = try await scheduler.enqueue(exec(["sh", "-c", "echo partial; echo 'disk on fire' >&2; exit 3"])).id
        let missing = try await scheduler.enqueue(exec(["/nonexistent/program"])).id
        try await runUntilEmpty(scheduler)

        let okTask = try #require(try await scheduler.task(ok))
        #expect(okTask.state == .succeeded)
        let result = try JSONDecoder().decode(ExecResult.self, from: Data(try #require(okTask.result).utf8))
        #expect(result.exitCode == 0)
        #expect(result.stdout == "out\nhej\n\(db.directory.path)\n")
        #expect(result.stderr == "err\n")
        #expect(okTask.result?.contains(#""exit_code":0"#) == true)

        let badTask = try #require(try await scheduler.task(bad))
        #expect(badTask.state == .dead)
        let badAttempt = try #require(try await scheduler.attempts(of: bad).first)
        #expect(badAttempt.outcome == .failed)
        #expect(badAttempt.error?.contains("exit status 3") == true)
        #expect(badAttempt.error?.contains("disk on fire") == true)

        let missingAttempt = try #require(try await scheduler.attempts(of: missing).first)
        #expect(missingAttempt.outcome == .failed)
        #expect(missingAttempt.error?.contains("/nonexistent/program") == true)
    }

    @Test(arguments: StoreKind.all) func execKeepsOnlyTheTailOfLongOutput(_ kind: StoreKind) async throws {
        let db = try kind.database()
        var configuration = testConfiguration(untilEmpty: true)
        configuration.outputTailBytes = 1000
        let scheduler = Scheduler(store: try db.store(), configuration: configuration, logger: testLogger)
        try scheduler.registerExec()
        let id = try await scheduler.enqueue(exec(["sh", "-c", "seq 1 100000; echo END"])).id
        try await runUntilEmpty(scheduler)
        let result = try JSONDecoder().decode(ExecResult.self, from: Data(try #require(try await scheduler.task(id)?.result).utf8))
        #expect(result.stdout.utf8.count == 1000)
        #expect(result.stdout.hasSuffix("99999\n100000\nEND\n"))
    }

    @Test(arguments: StoreKind.all) func execRunsCommandsConcurrentlyUpToTheProcessLimitAndNoFurther(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(),
                                  configuration: testConfiguration(queues: ["default": 8], processes: 2, untilEmpty: true),
                                  logger: testLogger)
        try scheduler.registerExec()
        let marks = db.directory.appendingPathComponent("running").path
        let log = db.directory.appendingPathComponent("log").path
        try FileManager.default.createDirectory(atPath: marks, withIntermediateDirectories: true)
        // Each command marks itself running, logs how many are, waits until two have run at once (the first
        // two meet, however slowly processes start), lingers, and unmarks itself.
        let gate = db.directory.appendingPathComponent("two-at-once").path
        let script = "touch \(marks)/$$; n=$(ls \(marks) | wc -l); echo $n >> \(log); if [ $n -ge 2 ]; then touch \(gate); fi; "
            + "while [ ! -e \(gate) ]; do sleep 0.01; done; sleep 0.15; rm \(marks)/$$"
        for _ in 0..<6 { try await scheduler.enqueue(exec(["sh", "-c", script])) }
        try await runUntilEmpty(scheduler)
        let counts = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            .compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        #expect(counts.count == 6)
        #expect(counts.max() == 2)
    }

    @Test(arguments: StoreKind.all) func execPastItsTimeoutGetsSIGTERMThenSIGKILLWithItsProcessGroup(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.registerExec()
        let pidFile = db.directory.appendingPathComponent("child.pid").path
        // The shell ignores SIGTERM (so SIGKILL is needed) and has a child in its group.
        var polite = exec(["sh", "-c", "sleep 3600"])
        polite.timeout = .milliseconds(200)
        var stubborn = exec(["sh", "-c", "trap '' TERM; sleep 3600 & echo $! > \(pidFile); wait; wait"])
        stubborn.timeout = .milliseconds(200)
        let politeID = try await scheduler.enqueue(polite).id
        let stubbornID = try await scheduler.enqueue(stubborn).id
        try await runUntilEmpty(scheduler)  // its guard (600 s) is far shorter than the commands' 3600 s
        for id in [politeID, stubbornID] {
            let attempts = try await scheduler.attempts(of: id)
            #expect(attempts.map(\.outcome) == [.timedOut])
            #expect(attempts.first?.error?.contains("timed out") == true)
        }
        // The grandchild (same process group) is gone too.
        let grandchild = try #require(Int32(try String(contentsOfFile: pidFile, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        // Dead once SIGKILL has been handled; it may linger as a zombie until init reaps it.
        @Sendable func isGone() -> Bool {
            if kill(grandchild, 0) == -1 && errno == ESRCH { return true }
            let stat = (try? String(contentsOfFile: "/proc/\(grandchild)/stat", encoding: .utf8)) ?? ""
            return stat.isEmpty || stat.split(separator: ")").last?.split(separator: " ").first == "Z"
        }
        try await within(.seconds(600), "the grandchild to die") {
            while !isGone() { try await Task.sleep(for: .milliseconds(20)) }
        }
    }

    @Test(arguments: StoreKind.all) func anExecPayloadWithoutArgvIsDeadWithAReadableError(_ kind: StoreKind) async throws {
        let db = try kind.database()
        let scheduler = Scheduler(store: try db.store(), configuration: testConfiguration(untilEmpty: true), logger: testLogger)
        try scheduler.registerExec()
        let id = try await scheduler.enqueue(TaskSpec(name: "exec", payload: #"{"args":["ls"]}"#, maxAttempts: 3)).id
        try await runUntilEmpty(scheduler)
        let task = try #require(try await scheduler.task(id))
        #expect(task.state == .dead)
        #expect(task.attempts == 1)
        #expect(task.lastError?.contains("argv") == true)
    }
}
