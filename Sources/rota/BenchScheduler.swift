import Foundation
import Logging
import Rota
import RotaPostgresStore
import RotaSQLiteStore
import Synchronization

/// Scheduler-level measurements for `rota bench`: end to end, dispatch latency (in-process and from the
/// CLI), and a scheduler working through a large backlog in a child process (peak RSS).
enum SchedulerBench {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Warnings and errors only, on stderr: stdout carries the key=value lines.
    static let logger = Logger(label: "rota.bench") { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = ProcessInfo.processInfo.environment["ROTA_BENCH_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return handler
    }

    static func removeDatabase(_ path: String) {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }

    /// Counts handler starts; once `target` have started, asks every scheduler to drain and stop.
    final class Finish: Sendable {
        let target: Int
        private let count = Atomic<Int>(0)
        let timedOut = Atomic<Bool>(false)
        let schedulers = Mutex<[Scheduler]>([])

        init(target: Int) { self.target = target }

        var started: Int { count.load(ordering: .relaxed) }

        func handlerStarted() {
            if count.wrappingAdd(1, ordering: .relaxed).newValue == target { stopAll(grace: .seconds(60)) }
        }

        func stopAll(grace: Duration) {
            for scheduler in schedulers.withLock({ $0 }) { scheduler.shutdown(grace: grace) }
        }
    }

    /// Enqueues `count` no-op tasks (untimed), then times `schedulers` schedulers (each with its own store
    /// connection) from start until every task has run and its completion is committed. Checks that every
    /// task is `succeeded` with a succeeded attempt row.
    static func endToEnd(path: String, count: Int, durability: Durability, schedulers: Int, concurrency: Int,
                         timeout: Duration) async throws -> (rate: Double, cpuMicrosPerTask: Double) {
        removeDatabase(path)
        do {
            let setup = try SQLiteTaskStore(path: path, configuration: .init(durability: durability))
            let chunk = Array(repeating: TaskSpec(name: "noop", payload: "{}"), count: min(10_000, count))
            var done = 0
            while done < count {
                let n = min(chunk.count, count - done)
                _ = try setup.enqueueSync(n == chunk.count ? chunk : Array(chunk.prefix(n)))
                done += n
            }
        }
        let stores = try (0..<schedulers).map { _ in
            try SQLiteTaskStore(path: path, configuration: .init(access: .existing, durability: durability, quickCheck: false))
        }
        let result = try await timedRun(stores: stores, count: count, concurrency: concurrency, timeout: timeout)
        let check = try SQLiteTaskStore(path: path, configuration: .init(access: .existing, quickCheck: false))
        try await verifySucceeded(check, count: count)
        return result
    }

    /// Times one scheduler per store (queue `default`, `concurrency` slots, no-op handlers) from start until
    /// `count` handlers have started and every scheduler has drained (its completions committed).
    static func timedRun(stores: [any TaskStore], count: Int, concurrency: Int,
                         timeout: Duration) async throws -> (rate: Double, cpuMicrosPerTask: Double) {
        let schedulers = stores.count
        let finish = Finish(target: count)
        var list: [Scheduler] = []
        for store in stores {
            let scheduler = Scheduler(store: store, configuration: .init(queues: ["default": concurrency]), logger: logger)
            try scheduler.register("noop") { (_: Empty, _) in
                finish.handlerStarted()
                return Empty()
            }
            list.append(scheduler)
        }
        finish.schedulers.withLock { $0 = list }
        let cpuBefore = processCPUSeconds()
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for scheduler in list { group.addTask { try await scheduler.run() } }
            let watchdog = Task {
                try await Task.sleep(for: timeout)
                finish.timedOut.store(true, ordering: .relaxed)
                finish.stopAll(grace: .zero)
            }
            try await group.waitForAll()
            watchdog.cancel()
        }
        let elapsed = ContinuousClock.now - start
        let cpu = processCPUSeconds() - cpuBefore
        if finish.timedOut.load(ordering: .relaxed) {
            throw Failure("end to end (\(schedulers) scheduler(s)): only \(finish.started) of \(count) tasks started within \(timeout)")
        }
        return (Double(count) / (milliseconds(elapsed) / 1000), cpu / Double(count) * 1e6)
    }

    /// Checks that `count` tasks are `succeeded`, and that task ids 1...count each have one succeeded
    /// attempt row (every one in full runs up to 200,000 tasks; a spread sample beyond).
    static func verifySucceeded(_ store: any TaskStore, count: Int) async throws {
        let stats = try await store.stats(now: Date())
        let succeeded = stats.states[.succeeded] ?? 0
        guard succeeded == count, stats.states.values.reduce(0, +) == count else {
            throw Failure("end to end: \(succeeded) of \(stats.states.values.reduce(0, +)) tasks succeeded, expected \(count)")
        }
        let step = max(1, count / 2_000)
        for id in stride(from: 1, through: count, by: step) {
            let attempts = try await store.attempts(of: TaskID(id))
            guard attempts.count == 1, attempts[0].outcome == .succeeded else {
                throw Failure("end to end: task \(id) has attempts \(attempts.map(\.outcome)), expected one succeeded")
            }
        }
    }

    /// In-process dispatch latency: an idle scheduler; each sample enqueues one due task through the
    /// scheduler and measures until its handler starts. Samples are spaced out (with jitter) so the
    /// scheduler is idle each time. Returns milliseconds.
    static func dispatchLatency(path: String, samples: Int, durability: Durability) async throws -> [Double] {
        removeDatabase(path)
        return try await dispatchLatency(store: SQLiteTaskStore(path: path, configuration: .init(durability: durability)),
                                         samples: samples)
    }

    /// In-process dispatch latency on `store` (see ``dispatchLatency(path:samples:durability:)``), ms.
    static func dispatchLatency(store: any TaskStore, samples: Int) async throws -> [Double] {
        let scheduler = Scheduler(store: store, logger: logger)
        let (starts, continuation) = AsyncStream<ContinuousClock.Instant>.makeStream()
        try scheduler.register("ping") { (_: Empty, _) in
            continuation.yield(.now)
            return Empty()
        }
        let runner = Task { try await scheduler.run() }
        var iterator = starts.makeAsyncIterator()
        try await Task.sleep(for: .milliseconds(200))
        var latencies: [Double] = []
        let warmup = 5
        for index in 0..<(samples + warmup) {
            try await Task.sleep(for: .milliseconds(10 + Int.random(in: 0..<10)))
            let sent = ContinuousClock.now
            try await scheduler.enqueue(TaskSpec(name: "ping"))
            guard let started = await iterator.next() else { throw Failure("dispatch: the handler stream ended") }
            if index >= warmup { latencies.append(milliseconds(started - sent)) }
        }
        scheduler.shutdown(grace: .seconds(5))
        try await runner.value
        return latencies
    }

    /// CLI dispatch latency: a scheduler in this process (default configuration: 50 ms poll); each sample
    /// runs `rota enqueue` in a new process, and the latency is from the task's `created_at` (set by the
    /// enqueuing process just before its commit) to its handler's start here. Returns milliseconds.
    static func cliDispatchLatency(path: String, samples: Int, binary: String, pollInterval: Duration) async throws -> [Double] {
        removeDatabase(path)
        return try await cliDispatchLatency(store: SQLiteTaskStore(path: path, configuration: .init(durability: .normal)),
                                            samples: samples, configuration: .init(pollInterval: pollInterval)) {
            try await runProcess(binary, ["enqueue", "cli.ping", "--db", path])
        }
    }

    /// Dispatch latency from another process on `store`: a scheduler with `configuration` in this process;
    /// each sample runs `enqueue` (which starts a process that enqueues one `cli.ping` and prints its id),
    /// and the latency is from the task's `created_at` to its handler's start here. Milliseconds.
    static func cliDispatchLatency(store: any TaskStore, samples: Int, configuration: Scheduler.Configuration,
                                   enqueue: () async throws -> String) async throws -> [Double] {
        let scheduler = Scheduler(store: store, configuration: configuration, logger: logger)
        let startedAt = Mutex<[TaskID: Date]>([:])
        try scheduler.register("cli.ping") { (_: Empty, context) in
            let now = Date()
            startedAt.withLock { $0[context.taskID] = now }
            return Empty()
        }
        let runner = Task { try await scheduler.run() }
        try await Task.sleep(for: .milliseconds(200))
        var ids: [TaskID] = []
        for _ in 0..<samples {
            // A random phase against the scheduler's poll.
            try await Task.sleep(for: .milliseconds(Int.random(in: 0..<60)))
            let output = try await enqueue()
            guard let id = TaskID(output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw Failure("cli dispatch: the enqueuing process printed \(output.debugDescription), not a task id")
            }
            ids.append(id)
            let deadline = ContinuousClock.now + .seconds(10)
            while startedAt.withLock({ $0[id] }) == nil {
                if ContinuousClock.now > deadline { throw Failure("cli dispatch: task \(id) did not start within 10 s") }
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        scheduler.shutdown(grace: .seconds(5))
        try await runner.value
        let starts = startedAt.withLock { $0 }
        var latencies: [Double] = []
        for id in ids {
            guard let record = try await store.task(id), let start = starts[id] else { continue }
            latencies.append(start.timeIntervalSince(record.createdAt) * 1000)
        }
        return latencies
    }

    /// Idle CPU of `rota run`: starts `binary run` on a new, empty database in another process (its
    /// defaults: FULL durability, default queue, 50 ms poll), waits until it has opened the database and
    /// then `settle` more, and measures its CPU time (user + system, all threads) over `window`.
    /// Returns the percentage of one core. Stops the process with SIGTERM afterwards.
    static func idleCPU(path: String, binary: String, settle: Duration, window: Duration) async throws -> Double {
        removeDatabase(path)
        // Started: the database and its WAL exist once the scheduler has opened and migrated it.
        return try await idleCPU(arguments: ["run", "--db", path, "--log-level", "warning"], binary: binary, quietStart: false,
                                 settle: settle, window: window) { _ in FileManager.default.fileExists(atPath: path + "-wal") }
    }

    /// The process of ``idleCPU(arguments:binary:quietStart:settle:window:ready:)`` exited before it was ready.
    struct ExitedAtStart: Error, CustomStringConvertible {
        var status: Int32
        var description: String { "idle cpu: the scheduler process exited with \(status) at start" }
    }

    /// Idle CPU of `binary ARGUMENTS` (a scheduler process): once `ready(pid)` (polled every 10 ms, for up to
    /// 60 s) and `settle` more, its CPU time over `window`, as a percentage of one core; then SIGTERM, after
    /// which it must exit 0. Its standard error goes to this process's, or nowhere with `quietStart`.
    /// - Throws: ``ExitedAtStart`` when it exits before it is ready.
    static func idleCPU(arguments: [String], binary: String, quietStart: Bool, settle: Duration, window: Duration,
                        ready: (Int32) async -> Bool) async throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = quietStart ? FileHandle.nullDevice : FileHandle.standardError
        let (exits, exited) = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { exited.yield($0.terminationStatus); exited.finish() }
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let pid = process.processIdentifier
        let deadline = ContinuousClock.now + .seconds(60)
        while await !ready(pid) {
            if !process.isRunning { throw ExitedAtStart(status: process.terminationStatus) }
            if ContinuousClock.now > deadline { throw Failure("idle cpu: `\(arguments.prefix(3).joined(separator: " "))` was not ready within 60 s") }
            try await Task.sleep(for: .milliseconds(10))
        }
        try await Task.sleep(for: settle)
        guard let before = cpuSeconds(of: pid) else { throw Failure("idle cpu: cannot read the CPU time of process \(pid)") }
        let start = ContinuousClock.now
        try await Task.sleep(for: window)
        guard let after = cpuSeconds(of: pid) else { throw Failure("idle cpu: process \(pid) went away during the window") }
        let elapsed = milliseconds(ContinuousClock.now - start) / 1000
        guard process.isRunning else { throw Failure("idle cpu: the scheduler process exited during the window") }
        process.terminate()
        var iterator = exits.makeAsyncIterator()
        let status = await iterator.next()
        if status != 0 { throw Failure("idle cpu: the scheduler process exited with \(status.map(String.init) ?? "?") after SIGTERM") }
        return (after - before) / elapsed * 100
    }

    /// User plus system CPU time of process `pid` (all its threads, ended ones included), in seconds: from
    /// its CPU-time clock (`clock_getcpuclockid`, nanoseconds), else utime + stime of `/proc/PID/stat`
    /// (clock ticks, usually 10 ms).
    static func cpuSeconds(of pid: Int32) -> Double? {
        var clock = clockid_t()
        var time = timespec()
        if clock_getcpuclockid(pid, &clock) == 0, clock_gettime(clock, &time) == 0 {
            return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
        }
        // The fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Runs `binary` with `arguments` and returns its stdout; throws when it exits non-zero.
    /// With `quiet`, its standard error goes nowhere (else to this process's); `directory` is its working
    /// directory (default: this process's).
    static func runProcess(_ binary: String, _ arguments: [String], quiet: Bool = false,
                           directory: String? = nil) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = quiet ? FileHandle.nullDevice : FileHandle.standardError
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        let text = String(decoding: data, as: UTF8.self)
        if status != 0 { throw Failure("\(binary) \(arguments.joined(separator: " ")) exited with \(status)") }
        return text
    }

    /// In a child process (`rota bench --rss-child DB`): a scheduler works `work` tasks of the backlog in
    /// DB (a SQLite file, or a PostgreSQL URL naming the schema); prints its rate and the process's peak RSS.
    static func rssChild(path: String, work: Int, concurrency: Int) async throws {
        let store: any TaskStore
        var postgres: PostgresTaskStore?
        if PostgresTaskStore.Configuration.isURL(path) {
            postgres = try await PostgresTaskStore.connect(url: path, access: .existing)
            store = postgres!
        } else {
            store = try SQLiteTaskStore(path: path, configuration: .init(access: .existing, durability: .normal, quickCheck: false))
        }
        let finish = Finish(target: work)
        let scheduler = Scheduler(store: store, configuration: .init(queues: ["default": concurrency]), logger: logger)
        try scheduler.register("noop") { (_: Empty, _) in
            finish.handlerStarted()
            return Empty()
        }
        finish.schedulers.withLock { $0 = [scheduler] }
        let start = ContinuousClock.now
        try await scheduler.run()
        let seconds = milliseconds(ContinuousClock.now - start) / 1000
        print("backlog_e2e=\(String(format: "%.0f", Double(work) / seconds))")
        print("peak_rss_mib=\(String(format: "%.1f", Double(peakRSSKiB() ?? 0) / 1024))")
        fflush(nil)
        await postgres?.close()
    }

    /// User plus system CPU time of this process so far, in seconds (all threads).
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// VmHWM of this process, in KiB.
    static func peakRSSKiB() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
        }
        return nil
    }

    /// The path of the running binary.
    static func executablePath() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}

/// p50/p99 etc. of a sample, by nearest rank.
func percentile(_ values: [Double], _ p: Double) -> Double {
    if values.isEmpty { return .nan }
    let sorted = values.sorted()
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}
