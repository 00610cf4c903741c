import ArgumentParser
import Foundation
import Rota
import RotaPostgresStore
import RotaSQLiteStore

/// `rota bench`: measures Rota on this machine and prints one `key=value` line per figure.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure enqueue, end-to-end, latency and backlog figures; prints key=value lines.",
        discussion: """
            Rates are per second, latencies in milliseconds. Plain `rota bench` measures
            with synchronous=NORMAL, then the same with FULL (keys with a _full suffix).
            Runs in a temporary directory unless --dir is given; with --db postgres://...,
            on that PostgreSQL database instead, each measurement in a new schema
            (rota_bench_*, dropped at its end), with the same keys (no _full keys: every
            PostgreSQL commit is durable) and e2e_noop_3sched.
            Groups: enqueue, e2e, dispatch, cli, idle, backlog.
              enqueue_one, enqueue_bulk   one task per call (durable on return); 1,000
              e2e_noop, e2e_noop_2sched   a backlog of no-op tasks run to `succeeded`
                                          (async executor), by one scheduler and by two
              e2e_noop_3sched             (PostgreSQL) by three, each with its own pool
              dispatch_p50_ms, _p99_ms    in-process enqueue of a due task to its start
              cli_dispatch_p50_ms, _p99   `rota enqueue` in another process to its start
              idle_cpu_pct                CPU of an idle `rota run` (empty database, other
                                          process), % of one core over 10 s (3 s --quick)
              backlog_claim_ratio         claim+complete rate behind a 1,000,000-task
                                          backlog over the rate with none
              peak_rss_mib                peak RSS of a scheduler working that backlog
            Examples:
              rota bench
              rota bench --quick          # a short run, for CI
              rota bench --backlog 200000 --only backlog
              rota bench --only idle,cli  # idle CPU and cross-process latency
              rota bench --db 'postgres://postgres@/rota?host=/run/postgresql'
            """
    )

    @Flag(help: "A short run (small counts, seconds), for CI.")
    var quick = false

    @Option(help: "The size of the backlog for the claim-ratio and memory figures (default 1,000,000).")
    var backlog: Int?

    @Option(help: "Tasks in the end-to-end runs (default 100,000).")
    var tasks: Int?

    @Option(help: "Queue concurrency (slots) of the end-to-end schedulers.")
    var concurrency: Int = 256

    @Option(help: "Only the named groups (enqueue, e2e, dispatch, cli, idle, backlog), comma-separated.")
    var only: String?

    @Option(help: "Where to put the benchmark databases (default: a new temporary directory).")
    var dir: String?

    @Option(help: "Poll interval of the scheduler in the CLI dispatch figure, in ms (the scheduler's default: 50).")
    var pollMs: Int = 50

    @Option(help: ArgumentHelp(
        "Measure on this PostgreSQL database (postgres://USER@HOST/DATABASE?OPTIONS), each group in a new schema.",
        valueName: "url"))
    var db: String?

    @Option(help: .hidden)
    var rssChild: String?

    @Option(help: .hidden)
    var rssWork: Int = 100_000

    /// A PostgreSQL URL: enqueue one `cli.ping` there, print its id (the CLI figure's other process).
    @Option(help: .hidden)
    var enqueueChild: String?

    /// A PostgreSQL URL: serve it as `rota run` would, until SIGTERM (the idle figure's process).
    @Option(help: .hidden)
    var serveChild: String?

    func validate() throws {
        if concurrency < 1 { throw ValidationError("--concurrency must be 1 or more") }
        if pollMs < 1 { throw ValidationError("--poll-ms must be 1 or more") }
        if let tasks, tasks < 1 { throw ValidationError("--tasks must be 1 or more") }
        if let backlog, backlog < 1 { throw ValidationError("--backlog must be 1 or more") }
        let known: Set<String> = ["enqueue", "e2e", "dispatch", "cli", "idle", "backlog"]
        if let bad = (only ?? "").split(separator: ",").map(String.init).first(where: { !known.contains($0) }) {
            throw ValidationError("--only: unknown group '\(bad)' (enqueue, e2e, dispatch, cli, idle, backlog)")
        }
        if let db {
            if !PostgresTaskStore.Configuration.isURL(db) {
                throw ValidationError("--db takes a PostgreSQL URL (postgres://USER@HOST/DATABASE); SQLite runs in --dir")
            }
            do { _ = try PostgresTaskStore.Configuration(url: db) } catch { throw ValidationError("--db: \(error)") }
        }
    }

    func run() async throws {
        if let rssChild {
            try await SchedulerBench.rssChild(path: rssChild, work: rssWork, concurrency: concurrency)
            return
        }
        if let enqueueChild {
            try await PostgresBench.enqueueChild(url: enqueueChild)
            return
        }
        if let serveChild {
            try await PostgresBench.serveChild(url: serveChild)
            return
        }
        let groups = Set((only ?? "enqueue,e2e,dispatch,cli,idle,backlog").split(separator: ",").map { String($0) })
        if let db {
            try await PostgresBench.run(url: db, groups: groups, quick: quick, tasks: tasks, backlog: backlog,
                                        concurrency: concurrency, pollInterval: .milliseconds(pollMs)) { key, value in
                print("\(key)=\(value)")
                fflush(nil)
            }
            return
        }
        let directory = try dir ?? makeTemporaryDirectory()
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: directory) } }
        let scale = quick ? 10 : 1
        let e2eTasks = tasks ?? 100_000 / scale
        func emit(_ key: String, _ value: String) {
            print("\(key)=\(value)")
            fflush(nil)
        }
        func rate(_ value: Double) -> String { String(format: "%.0f", value) }
        func ms(_ value: Double) -> String { String(format: "%.2f", value) }
        emit("cores", "\(ProcessInfo.processInfo.activeProcessorCount)")
        for durability in [Durability.normal, .full] {
            let suffix = durability == .full ? "_full" : ""
            if groups.contains("enqueue") {
                let one = try StoreBench.enqueueOne(directory: directory, count: (durability == .full ? 2_000 : 20_000) / scale, durability: durability)
                emit("enqueue_one\(suffix)", rate(one))
                let bulk = try StoreBench.enqueueBulk(directory: directory, count: 200_000 / scale, batch: 1_000, durability: durability)
                emit("enqueue_bulk\(suffix)", rate(bulk))
            }
            if groups.contains("e2e") {
                let path = directory + "/e2e.db"
                let timeout = Duration.seconds(quick ? 60 : 300)
                let one = try await SchedulerBench.endToEnd(path: path, count: e2eTasks, durability: durability, schedulers: 1,
                                                            concurrency: concurrency, timeout: timeout)
                emit("e2e_noop\(suffix)", rate(one.rate))
                emit("e2e_cpu_us_per_task\(suffix)", String(format: "%.1f", one.cpuMicrosPerTask))
                let two = try await SchedulerBench.endToEnd(path: path, count: e2eTasks, durability: durability, schedulers: 2,
                                                            concurrency: concurrency, timeout: timeout)
                emit("e2e_noop_2sched\(suffix)", rate(two.rate))
                if durability == .normal {
                    emit("e2e_tasks", "\(e2eTasks)")
                    emit("e2e_concurrency", "\(concurrency)")
                }
            }
            if groups.contains("dispatch") {
                let samples = try await SchedulerBench.dispatchLatency(path: directory + "/dispatch.db", samples: quick ? 40 : 300,
                                                                       durability: durability)
                emit("dispatch_p50_ms\(suffix)", ms(percentile(samples, 50)))
                emit("dispatch_p99_ms\(suffix)", ms(percentile(samples, 99)))
                emit("dispatch_max_ms\(suffix)", ms(samples.max() ?? .nan))
            }
        }
        if groups.contains("cli") {
            let samples = try await SchedulerBench.cliDispatchLatency(path: directory + "/cli.db", samples: quick ? 15 : 100,
                                                                      binary: SchedulerBench.executablePath(),
                                                                      pollInterval: .milliseconds(pollMs))
            emit("cli_dispatch_p50_ms", ms(percentile(samples, 50)))
            emit("cli_dispatch_p99_ms", ms(percentile(samples, 99)))
            emit("cli_dispatch_max_ms", ms(samples.max() ?? .nan))
            emit("cli_dispatch_samples", "\(samples.count)")
        }
        if groups.contains("idle") {
            let window = quick ? 3 : 10
            let percent = try await SchedulerBench.idleCPU(path: directory + "/idle.db", binary: SchedulerBench.executablePath(),
                                                           settle: .seconds(quick ? 1 : 2), window: .seconds(window))
            emit("idle_cpu_pct", String(format: "%.3f", percent))
            emit("idle_cpu_window_s", "\(window)")
        }
        if groups.contains("backlog") {
            let size = backlog ?? (quick ? 50_000 : 1_000_000)
            let result = try StoreBench.backlogClaim(directory: directory, backlog: size, work: 20_000 / scale,
                                                     rounds: quick ? 3 : 5)
            emit("claim_empty", rate(result.empty))
            emit("claim_backlog", rate(result.loaded))
            emit("backlog_size", "\(size)")
            emit("backlog_claim_ratio", String(format: "%.2f", result.ratio))
            // A scheduler process working through that backlog: its rate and peak RSS.
            let output = try await SchedulerBench.runProcess(SchedulerBench.executablePath(), [
                "bench", "--rss-child", directory + "/claim-backlog.db", "--rss-work", "\(min(size / 2, 100_000 / scale))",
                "--concurrency", "\(concurrency)"])
            for line in output.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { emit(String(parts[0]), String(parts[1])) }
            }
        }
    }

    private func makeTemporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "rota-bench-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Store-level measurements (no scheduler): the cost of Rota's SQL and its Swift layer.
enum StoreBench {
    static let payload = #"{"item":12345,"note":"x"}"#

    static func freshStore(_ directory: String, _ name: String, _ durability: Durability) throws -> SQLiteTaskStore {
        let path = directory + "/" + name + ".db"
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        return try SQLiteTaskStore(path: path, configuration: .init(durability: durability))
    }

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Enqueue rate, one task per call (one transaction each, durable when the call returns).
    static func enqueueOne(directory: String, count: Int, durability: Durability) throws -> Double {
        let store = try freshStore(directory, "enqueue-one", durability)
        let spec = TaskSpec(name: "noop", payload: payload)
        let time = try seconds {
            for _ in 0..<count { _ = try store.enqueueSync([spec]) }
        }
        return Double(count) / time
    }

    /// Enqueue rate in transactions of `batch` tasks.
    static func enqueueBulk(directory: String, count: Int, batch: Int, durability: Durability) throws -> Double {
        let store = try freshStore(directory, "enqueue-bulk", durability)
        let specs = Array(repeating: TaskSpec(name: "noop", payload: payload), count: batch)
        let time = try seconds {
            var done = 0
            while done < count {
                _ = try store.enqueueSync(done + batch <= count ? specs : Array(specs.prefix(count - done)))
                done += batch
            }
        }
        return Double(count) / time
    }

    /// Claim-and-complete rate (64 per claim) from an empty table versus from a `backlog`-task backlog,
    /// measured in `rounds` alternating rounds (empty, then behind the backlog) of `work` tasks each: the
    /// medians of each rate, and the median of the ratios taken within a round (a shared machine's speed
    /// moves between two measurements seconds apart).
    static func backlogClaim(directory: String, backlog: Int, work: Int, rounds: Int) throws
        -> (empty: Double, loaded: Double, ratio: Double) {
        func lifecycle(_ store: SQLiteTaskStore, _ count: Int) throws -> Double {
            try seconds {
                var done = 0
                while done < count {
                    let now = Date()
                    let claimed = try store.claimSync([ClaimRequest(queue: "default", names: nil, limit: 64)],
                                                      worker: "bench", leaseUntil: now.addingTimeInterval(60), now: now)
                    if claimed.isEmpty { break }
                    let finished = Date()
                    try store.completeSync(claimed.map {
                        Completion(taskID: $0.id, attempt: $0.attempt, worker: "bench", startedAt: $0.startedAt,
                                   finishedAt: finished, resolution: .succeeded(result: nil))
                    })
                    done += claimed.count
                }
            }.reciprocal(count)
        }
        let spec = TaskSpec(name: "noop", payload: payload)
        let empty = try freshStore(directory, "claim-empty", .normal)
        for _ in stride(from: 0, to: work * rounds, by: 1_000) { _ = try empty.enqueueSync(Array(repeating: spec, count: 1_000)) }

        let loaded = try freshStore(directory, "claim-backlog", .normal)
        // The backlog: due tasks, enqueued after the ones we work through (same priority, later run_at).
        let early = TaskSpec(name: "noop", payload: payload, runAt: Date(timeIntervalSinceNow: -3600))
        for _ in stride(from: 0, to: work * rounds, by: 1_000) { _ = try loaded.enqueueSync(Array(repeating: early, count: 1_000)) }
        let chunk = Array(repeating: spec, count: 10_000)
        for _ in stride(from: 0, to: backlog, by: 10_000) { _ = try loaded.enqueueSync(chunk) }

        var emptyRates: [Double] = []
        var loadedRates: [Double] = []
        for _ in 0..<rounds {
            emptyRates.append(try lifecycle(empty, work))
            loadedRates.append(try lifecycle(loaded, work))
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        return (median(emptyRates), median(loadedRates), median(zip(loadedRates, emptyRates).map { $0 / $1 }))
    }
}

extension Double {
    /// `count / self`: a rate from a duration in seconds.
    fileprivate func reciprocal(_ count: Int) -> Double { Double(count) / self }
}
