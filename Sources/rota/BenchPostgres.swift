import Foundation
import Logging
import PostgresNIO
import Rota
import RotaPostgresStore
import Synchronization

/// `rota bench --db postgres://...`: the groups that mean something on PostgreSQL, printed with the keys of
/// the SQLite run (see bench/README.md for which are skipped or stand for their SQLite counterpart). Every
/// measurement runs in a schema of its own (`rota_bench_<pid>_<random>_<what>`), created by the store's
/// migrations and dropped when the measurement ends.
enum PostgresBench {
    typealias Failure = SchedulerBench.Failure

    /// The run's connection settings and the schemas it made.
    final class Session: Sendable {
        /// The URL as given (its `schema` option, if any, is replaced per measurement).
        let url: String
        /// That URL, read.
        let base: PostgresTaskStore.Configuration
        /// `rota_bench_<pid>_<random>`: the start of every schema name of this run.
        let prefix: String
        private let counter = Atomic<Int>(0)
        /// A client for the few statements the store has no method for (dropping a schema).
        private let admin: PostgresClient
        private let adminRunner: Task<Void, Never>

        init(url: String) throws {
            self.url = url
            base = try PostgresTaskStore.Configuration(url: url)
            prefix = "rota_bench_\(getpid())_\(String(UInt32.random(in: 0 ... .max), radix: 36))"
            admin = PostgresClient(configuration: Self.clientConfiguration(base), backgroundLogger: Self.quiet)
            adminRunner = Task.detached { [admin] in await admin.run() }
        }

        /// Stops the admin client.
        func close() async {
            adminRunner.cancel()
            await adminRunner.value
        }

        static let quiet: Logger = {
            var logger = Logger(label: "rota.bench.postgres")
            logger.logLevel = .critical
            return logger
        }()

        /// A new schema name for `what` (lowercase letters, digits and underscores).
        func newSchema(_ what: String) -> String {
            "\(prefix)_\(counter.add(1, ordering: .relaxed).newValue)_\(what)"
        }

        /// The URL of `schema` (for another process): the last `schema` option of a URL wins.
        func url(schema: String) -> String {
            url + (url.contains("?") ? "&" : "?") + "schema=" + schema
        }

        /// Opens the store on `schema` (created and migrated with `.migrate`).
        func connect(_ schema: String, access: PostgresTaskStore.Configuration.Access = .migrate) async throws -> PostgresTaskStore {
            var configuration = base
            configuration.schema = schema
            configuration.access = access
            return try await PostgresTaskStore.connect(configuration)
        }

        /// Runs `body` with a new schema, and drops the schema afterwards (whatever `body` did).
        func withSchema<T: Sendable>(_ what: String, _ body: (String) async throws -> T) async throws -> T {
            let schema = newSchema(what)
            do {
                let value = try await body(schema)
                try await drop(schema)
                return value
            } catch {
                try? await drop(schema)
                throw error
            }
        }

        /// `DROP SCHEMA ... CASCADE`.
        func drop(_ schema: String) async throws {
            let name = "\"" + schema.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            try await admin.query(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \(name) CASCADE"), logger: Self.quiet)
        }

        /// The server's `server_version_num` (150010 for 15.10).
        func serverVersion() async throws -> Int {
            for try await row in try await admin.query("SELECT current_setting('server_version_num')::int", logger: Self.quiet) {
                return try row.decode(Int.self)
            }
            throw Failure("postgres: no server_version_num")
        }

        /// A client configuration for `configuration`'s server, made as the store makes its own.
        static func clientConfiguration(_ configuration: PostgresTaskStore.Configuration) -> PostgresClient.Configuration {
            var client: PostgresClient.Configuration
            if let directory = configuration.socketDirectory {
                client = .init(unixSocketPath: directory + "/.s.PGSQL.\(configuration.port)", username: configuration.user,
                               password: configuration.password, database: configuration.database)
            } else {
                var unverified = TLSConfiguration.makeClientConfiguration()
                unverified.certificateVerification = .none
                let tls: PostgresClient.Configuration.TLS
                switch configuration.sslMode {
                case "disable", "allow": tls = .disable
                case "require": tls = .require(unverified)
                case "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
                default: tls = .prefer(unverified)
                }
                client = .init(host: configuration.host ?? "localhost", port: configuration.port, username: configuration.user,
                               password: configuration.password, database: configuration.database, tls: tls)
            }
            client.options.maximumConnections = 1
            client.options.minimumConnections = 0
            client.options.additionalStartupParameters = [("application_name", "rota-bench")]
            return client
        }
    }

    static let payload = StoreBench.payload

    /// Enqueues `count` no-op tasks, 10,000 per call (untimed set-up).
    static func enqueueNoops(_ store: PostgresTaskStore, count: Int, runAt: Date? = nil, payload: String = "{}") async throws {
        let chunk = Array(repeating: TaskSpec(name: "noop", payload: payload, runAt: runAt), count: min(10_000, count))
        var done = 0
        while done < count {
            let n = min(chunk.count, count - done)
            _ = try await store.enqueue(n == chunk.count ? chunk : Array(chunk.prefix(n)))
            done += n
        }
    }

    /// Wall-clock seconds of `body`.
    static func seconds(_ body: () async throws -> Void) async rethrows -> Double {
        let start = ContinuousClock.now
        try await body()
        return SchedulerBench.milliseconds(ContinuousClock.now - start) / 1000
    }

    /// Enqueue rate, one task per call (one transaction each, committed when the call returns).
    static func enqueueOne(_ session: Session, count: Int) async throws -> Double {
        try await session.withSchema("enqueue_one") { schema in
            let store = try await session.connect(schema)
            let spec = TaskSpec(name: "noop", payload: payload)
            let time = try await seconds {
                for _ in 0..<count { _ = try await store.enqueue([spec]) }
            }
            await store.close()
            return Double(count) / time
        }
    }

    /// Enqueue rate in calls (transactions) of `batch` tasks.
    static func enqueueBulk(_ session: Session, count: Int, batch: Int) async throws -> Double {
        try await session.withSchema("enqueue_bulk") { schema in
            let store = try await session.connect(schema)
            let specs = Array(repeating: TaskSpec(name: "noop", payload: payload), count: batch)
            let time = try await seconds {
                var done = 0
                while done < count {
                    _ = try await store.enqueue(done + batch <= count ? specs : Array(specs.prefix(count - done)))
                    done += batch
                }
            }
            await store.close()
            return Double(count) / time
        }
    }

    /// `count` no-op tasks enqueued (untimed), then `schedulers` schedulers, each with its own store (its own
    /// pool and LISTEN connection), timed from start until every task ran and its completion is committed.
    static func endToEnd(_ session: Session, count: Int, schedulers: Int, concurrency: Int,
                         timeout: Duration) async throws -> (rate: Double, cpuMicrosPerTask: Double) {
        try await session.withSchema("e2e_\(schedulers)sched") { schema in
            let setup = try await session.connect(schema)
            try await enqueueNoops(setup, count: count)
            var stores: [PostgresTaskStore] = []
            do {
                for _ in 0..<schedulers { stores.append(try await session.connect(schema, access: .existing)) }
                let result = try await SchedulerBench.timedRun(stores: stores, count: count, concurrency: concurrency,
                                                               timeout: timeout)
                try await SchedulerBench.verifySucceeded(setup, count: count)
                for store in stores { await store.close() }
                await setup.close()
                return result
            } catch {
                for store in stores { await store.close() }
                await setup.close()
                throw error
            }
        }
    }

    /// In-process dispatch latency (an idle scheduler, `scheduler.enqueue` to the handler's start), ms.
    static func dispatchLatency(_ session: Session, samples: Int) async throws -> [Double] {
        try await session.withSchema("dispatch") { schema in
            let store = try await session.connect(schema)
            let latencies = try await SchedulerBench.dispatchLatency(store: store, samples: samples)
            await store.close()
            return latencies
        }
    }

    /// Dispatch latency from another process: `rota enqueue --db URL` when this binary's CLI opens
    /// PostgreSQL URLs, else `rota bench --enqueue-child URL` (a new process that connects and enqueues as
    /// `rota enqueue` does). The scheduler in this process has the default configuration (LISTEN/NOTIFY with a
    /// 5 ms watch interval; polling every `pollInterval` otherwise). Milliseconds, and which enqueuer ran.
    static func cliDispatchLatency(_ session: Session, samples: Int, binary: String,
                                   pollInterval: Duration) async throws -> (latencies: [Double], enqueuer: String) {
        try await session.withSchema("cli") { schema in
            let store = try await session.connect(schema)
            let url = session.url(schema: schema)
            let probe = NSTemporaryDirectory() + "rota-bench-probe-\(getpid())-\(UInt32.random(in: 0 ... .max))"
            try FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: probe) }
            let cliArguments = ["enqueue", "cli.ping", "--db", url]
            let cli = try? await SchedulerBench.runProcess(binary, cliArguments, quiet: true, directory: probe)
            let arguments = cli.flatMap { TaskID($0.trimmingCharacters(in: .whitespacesAndNewlines)) } != nil
                ? cliArguments : ["bench", "--enqueue-child", url]
            let latencies = try await SchedulerBench.cliDispatchLatency(
                store: store, samples: samples,
                configuration: .init(pollInterval: pollInterval, watchInterval: .milliseconds(5)),
                enqueue: { try await SchedulerBench.runProcess(binary, arguments) })
            await store.close()
            return (latencies, arguments == cliArguments ? "rota-enqueue" : "bench-child")
        }
    }

    /// In a child process (`rota bench --enqueue-child URL`): enqueues one `cli.ping` and prints its id.
    static func enqueueChild(url: String) async throws {
        let store = try await PostgresTaskStore.connect(url: url, access: .existing)
        let id = try await store.enqueue(TaskSpec(name: "cli.ping")).id
        await store.close()
        print(id)
        fflush(nil)
    }

    /// Idle CPU of a scheduler process on an empty schema: `rota run --db URL` when this binary's CLI opens
    /// PostgreSQL URLs, else `rota bench --serve-child URL` (`rota run`'s defaults: queue `default`, 50 ms
    /// poll, LISTEN/NOTIFY). Started once it registered as a worker. Percent of one core, and which ran.
    static func idleCPU(_ session: Session, binary: String, settle: Duration,
                        window: Duration) async throws -> (percent: Double, process: String) {
        try await session.withSchema("idle") { schema in
            let store = try await session.connect(schema)
            let url = session.url(schema: schema)
            func registered(_ pid: Int32) async -> Bool {
                ((try? await store.workers()) ?? []).contains { $0.pid == pid && $0.stoppedAt == nil }
            }
            let result: (Double, String)
            do {
                result = (try await SchedulerBench.idleCPU(arguments: ["run", "--db", url, "--log-level", "warning"], binary: binary,
                                                           quietStart: true, settle: settle, window: window, ready: registered),
                          "rota-run")
            } catch is SchedulerBench.ExitedAtStart {
                result = (try await SchedulerBench.idleCPU(arguments: ["bench", "--serve-child", url], binary: binary,
                                                           quietStart: false, settle: settle, window: window, ready: registered),
                          "bench-child")
            }
            await store.close()
            return result
        }
    }

    /// In a child process (`rota bench --serve-child URL`): a scheduler with `rota run`'s defaults (queue
    /// `default`, 4 slots, `exec` registered, 50 ms poll, LISTEN/NOTIFY) until SIGTERM or SIGINT.
    static func serveChild(url: String) async throws {
        let store = try await PostgresTaskStore.connect(url: url)
        var configuration = Scheduler.Configuration(queues: ["default": 4], maxProcesses: 4, pollInterval: .milliseconds(50),
                                                    watchInterval: .milliseconds(5))
        configuration.threadPoolSize = 1
        let scheduler = Scheduler(store: store, configuration: configuration, logger: SchedulerBench.logger)
        try scheduler.registerExec()
        let signals = SignalHandler(signals: [SIGTERM, SIGINT]) { _ in scheduler.shutdown(grace: .zero) }
        defer { signals.cancel() }
        try await scheduler.run()
        await store.close()
    }

    /// Claim-and-complete rate, 64 tasks per turn as the scheduler's turn does it (a turn records the last
    /// claim's completions and claims the next 64, one transaction), from a schema with no backlog and from
    /// one behind `backlog` due tasks, in `rounds` alternating rounds of `work` tasks: the medians of the
    /// rates and of the ratios within a round. Then a child process's scheduler works through
    /// `childWork` tasks of the backlog: its rate and peak RSS (lines `key=value`).
    static func backlogClaim(_ session: Session, backlog: Int, work: Int, rounds: Int, childWork: Int, concurrency: Int,
                             binary: String) async throws -> (empty: Double, loaded: Double, ratio: Double, child: String) {
        func lifecycle(_ store: PostgresTaskStore, _ count: Int) async throws -> Double {
            var claimedCount = 0
            var pending: [Completion] = []
            let time = try await seconds {
                while claimedCount < count || !pending.isEmpty {
                    let now = Date()
                    let limit = min(64, count - claimedCount)
                    let turn = try await store.completeAndClaim(
                        pending, limit > 0 ? [ClaimRequest(queue: "default", names: nil, limit: limit)] : [],
                        worker: "bench", leaseUntil: now.addingTimeInterval(60), now: now)
                    let finished = Date()
                    pending = turn.claimed.map {
                        Completion(taskID: $0.id, attempt: $0.attempt, worker: "bench", startedAt: $0.startedAt,
                                   finishedAt: finished, resolution: .succeeded(result: nil))
                    }
                    claimedCount += turn.claimed.count
                    if turn.claimed.isEmpty && limit > 0 { break }
                }
            }
            return Double(claimedCount) / time
        }
        return try await session.withSchema("claim_empty") { emptySchema in
            try await session.withSchema("claim_backlog") { loadedSchema in
                let empty = try await session.connect(emptySchema)
                try await enqueueNoops(empty, count: work * rounds, payload: payload)
                let loaded = try await session.connect(loadedSchema)
                // The tasks worked through first (earlier run_at), then the backlog behind them.
                try await enqueueNoops(loaded, count: work * rounds, runAt: Date(timeIntervalSinceNow: -3600), payload: payload)
                try await enqueueNoops(loaded, count: backlog, payload: payload)
                var emptyRates: [Double] = []
                var loadedRates: [Double] = []
                for _ in 0..<rounds {
                    emptyRates.append(try await lifecycle(empty, work))
                    loadedRates.append(try await lifecycle(loaded, work))
                }
                await empty.close()
                await loaded.close()
                let child = try await SchedulerBench.runProcess(binary, [
                    "bench", "--rss-child", session.url(schema: loadedSchema), "--rss-work", "\(childWork)",
                    "--concurrency", "\(concurrency)"])
                func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
                return (median(emptyRates), median(loadedRates), median(zip(loadedRates, emptyRates).map { $0 / $1 }), child)
            }
        }
    }

    /// The whole `rota bench --db URL` run: the groups asked for, printed through `emit`.
    static func run(url: String, groups: Set<String>, quick: Bool, tasks: Int?, backlog: Int?, concurrency: Int,
                    pollInterval: Duration, emit: (String, String) -> Void) async throws {
        let session = try Session(url: url)
        do {
            try await measure(session, groups: groups, quick: quick, tasks: tasks, backlog: backlog, concurrency: concurrency,
                              pollInterval: pollInterval, emit: emit)
            await session.close()
        } catch {
            await session.close()
            throw error
        }
    }

    private static func measure(_ session: Session, groups: Set<String>, quick: Bool, tasks: Int?, backlog: Int?,
                                concurrency: Int, pollInterval: Duration, emit: (String, String) -> Void) async throws {
        func rate(_ value: Double) -> String { String(format: "%.0f", value) }
        func ms(_ value: Double) -> String { String(format: "%.2f", value) }
        let scale = quick ? 10 : 1
        let binary = SchedulerBench.executablePath()
        emit("cores", "\(ProcessInfo.processInfo.activeProcessorCount)")
        emit("store", "postgres")
        emit("pg_server_version_num", "\(try await session.serverVersion())")
        if groups.contains("enqueue") {
            emit("enqueue_one", rate(try await enqueueOne(session, count: 5_000 / scale)))
            emit("enqueue_bulk", rate(try await enqueueBulk(session, count: 200_000 / scale, batch: 1_000)))
        }
        if groups.contains("e2e") {
            let count = tasks ?? 100_000 / scale
            let timeout = Duration.seconds(quick ? 120 : 600)
            let one = try await endToEnd(session, count: count, schedulers: 1, concurrency: concurrency, timeout: timeout)
            emit("e2e_noop", rate(one.rate))
            emit("e2e_cpu_us_per_task", String(format: "%.1f", one.cpuMicrosPerTask))
            let two = try await endToEnd(session, count: count, schedulers: 2, concurrency: concurrency, timeout: timeout)
            emit("e2e_noop_2sched", rate(two.rate))
            let three = try await endToEnd(session, count: count, schedulers: 3, concurrency: concurrency, timeout: timeout)
            emit("e2e_noop_3sched", rate(three.rate))
            emit("e2e_tasks", "\(count)")
            emit("e2e_concurrency", "\(concurrency)")
        }
        if groups.contains("dispatch") {
            let samples = try await dispatchLatency(session, samples: quick ? 40 : 300)
            emit("dispatch_p50_ms", ms(percentile(samples, 50)))
            emit("dispatch_p99_ms", ms(percentile(samples, 99)))
            emit("dispatch_max_ms", ms(samples.max() ?? .nan))
        }
        if groups.contains("cli") {
            let result = try await cliDispatchLatency(session, samples: quick ? 15 : 100, binary: binary, pollInterval: pollInterval)
            emit("cli_dispatch_p50_ms", ms(percentile(result.latencies, 50)))
            emit("cli_dispatch_p99_ms", ms(percentile(result.latencies, 99)))
            emit("cli_dispatch_max_ms", ms(result.latencies.max() ?? .nan))
            emit("cli_dispatch_samples", "\(result.latencies.count)")
            emit("cli_dispatch_enqueuer", result.enqueuer)
        }
        if groups.contains("idle") {
            let window = quick ? 3 : 10
            let result = try await idleCPU(session, binary: binary, settle: .seconds(quick ? 1 : 2), window: .seconds(window))
            emit("idle_cpu_pct", String(format: "%.3f", result.percent))
            emit("idle_cpu_window_s", "\(window)")
            emit("idle_cpu_process", result.process)
        }
        if groups.contains("backlog") {
            let size = backlog ?? (quick ? 50_000 : 1_000_000)
            let result = try await backlogClaim(session, backlog: size, work: 20_000 / scale, rounds: quick ? 3 : 5,
                                                childWork: min(size / 2, 100_000 / scale), concurrency: concurrency,
                                                binary: binary)
            emit("claim_empty", rate(result.empty))
            emit("claim_backlog", rate(result.loaded))
            emit("backlog_size", "\(size)")
            emit("backlog_claim_ratio", String(format: "%.2f", result.ratio))
            for line in result.child.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { emit(String(parts[0]), String(parts[1])) }
            }
        }
    }
}
