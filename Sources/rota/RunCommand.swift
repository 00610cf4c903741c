import ArgumentParser
import Dispatch
import Foundation
import Logging
import Rota
import RotaSQLiteStore
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// `rota run`: runs a scheduler with the built-in `exec` task until SIGTERM/SIGINT (or, with
/// `--until-empty`, until nothing it can run is left).
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a scheduler for `exec` tasks (and schedules) until stopped.",
        discussion: """
            Claims due `exec` tasks of the given queues and runs each command in its own
            process group. SIGTERM or SIGINT drains: no new claims, running commands get
            --grace seconds to finish, then they are terminated and their tasks handed
            back (run again at once on the next start); a second signal ends the grace at
            once. Exits 0 after a drain.

            On PostgreSQL (--db postgres://...), any number of `rota run` processes on
            any hosts share the queue; --durability is SQLite's setting (every commit on
            PostgreSQL is as durable as the server's synchronous_commit, which Rota asks
            to be on).

            Examples:
              rota run --db /var/lib/rota/rota.db --concurrency 4
              rota run --until-empty --queue default --queue maintenance
              rota run --db postgres://rota@db.internal/rota --schedules /etc/rota/schedules
            """
    )

    enum DurabilityOption: String, ExpressibleByArgument, CaseIterable {
        case full, normal
    }

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("Load cron schedules from the files in this directory (SIGHUP reloads them).", valueName: "dir"))
    var schedules: String?

    @Option(name: .long, parsing: .unconditional, help: "Tasks run at once per queue.")
    var concurrency: Int = 4

    @Flag(name: .long, help: "Exit 0 once no task this scheduler can run is scheduled or running.")
    var untilEmpty = false

    @Option(name: .customLong("queue"), help: ArgumentHelp("A queue to serve (repeatable; default: default and the queues of the loaded schedules).", valueName: "name"))
    var queues: [String] = []

    @Option(name: .long, help: "SQLite only. full: every commit survives power loss; normal: faster, survives a process crash.")
    var durability: DurabilityOption = .full

    @Option(name: .long, parsing: .unconditional, help: "Seconds running tasks get to finish after SIGTERM/SIGINT.")
    var grace: Double = 30

    @Option(name: .long, parsing: .unconditional, help: "Milliseconds between polls for tasks enqueued by other processes.")
    var pollMs: Int = 50

    @Option(name: .long, parsing: .unconditional, help: "Milliseconds between looks for other processes' commits (cheap; a commit starts a claim at once). 0: poll only.")
    var watchMs: Int = 5

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp(
        "Seconds a running task's lease lasts without a heartbeat: how long before the tasks of a scheduler that died "
            + "(or was cut off from the database) run elsewhere. Heartbeats and lease recovery run at a quarter of it "
            + "(at most every 10 and 15 s)."))
    var leaseSeconds: Double = 60

    @Option(name: .long, help: ArgumentHelp(
        "Delete succeeded, dead and cancelled tasks (and their attempts) once they finished longer ago than this "
            + "(like 7d or 12h), at each lease-recovery tick; on PostgreSQL the cluster's leader does it. "
            + "Default: keep them until `rota purge`.", valueName: "duration"))
    var purgeAfter: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "notice"

    func validate() throws {
        if concurrency < 1 { throw ValidationError("--concurrency must be 1 or more, got \(concurrency)") }
        if grace < 0 { throw ValidationError("--grace must be 0 or more, got \(grace)") }
        if pollMs < 1 { throw ValidationError("--poll-ms must be 1 or more, got \(pollMs)") }
        if watchMs < 0 { throw ValidationError("--watch-ms must be 0 (off) or more, got \(watchMs)") }
        if !(leaseSeconds >= 1) { throw ValidationError("--lease-seconds must be 1 or more, got \(leaseSeconds)") }
        if let purgeAfter {
            do { _ = try TimeText.parseDuration(purgeAfter, field: "--purge-after") } catch let error as CLIError {
                throw ValidationError(error.message)
            }
        }
        if Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical; got \(logLevel)")
        }
        if let bad = queues.first(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw ValidationError("--queue must not be empty (got '\(bad)')")
        }
    }

    func run() async throws {
        if global.isPostgres, durability != .full {
            throw CLIError.usage("""
                --durability \(durability.rawValue) is SQLite's setting; on PostgreSQL a commit is as durable as the \
                server's synchronous_commit makes it (Rota sets it on): drop --durability
                """)
        }
        let level = Logger.Level(rawValue: logLevel) ?? .notice
        // Under systemd, stderr is the journal, which stamps every line itself: no timestamp of ours.
        let journal = JournalLogHandler.stderrIsJournal()
        LoggingSystem.bootstrap { label in
            if journal { return JournalLogHandler(label: label, level: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        // systemd's watchdog (WatchdogSec=) is fed from the start: migrations can take a while.
        let notifier = SystemdNotifier()
        let watchdog = notifier.startWatchdog(logger: Logger(label: "rota.run"))
        defer { watchdog?.cancel() }
        // Bad schedule files stop the start before anything is created or written.
        if let directory = schedules {
            let loaded = ScheduleLoading.load(directory: directory)
            if !loaded.isValid { throw scheduleErrors(loaded.errors, directory: directory) }
        }
        try await global.withStore(.create, durability: durability == .full ? .full : .normal) { store in
            try await run(on: store, notifier: notifier)
        }
    }

    /// Runs the scheduler (and the schedules) on `store` until it is stopped, or empty with `--until-empty`,
    /// telling systemd (through `notifier`) when it serves, reloads and stops.
    private func run(on store: any TaskStore, notifier: SystemdNotifier) async throws {
        var cron: ScheduleService?
        if let schedules { cron = try await loadSchedules(from: schedules, store: store) }
        // Without --queue: `default`, and every queue the loaded schedules enqueue into.
        let scheduleQueues = cron == nil ? [] : try await store.schedules().filter(\.active).map(\.spec.queue)
        let queueNames = queues.isEmpty ? Array(Set(["default"] + scheduleQueues)).sorted() : Array(Set(queues))
        var configuration = Scheduler.Configuration(
            queues: Dictionary(uniqueKeysWithValues: queueNames.map { ($0, concurrency) }),
            maxProcesses: concurrency * queueNames.count,
            pollInterval: .milliseconds(pollMs),
            watchInterval: watchMs == 0 ? nil : .milliseconds(watchMs),
            shutdownGrace: .milliseconds(Int64(grace * 1000)),
            untilEmpty: untilEmpty)
        configuration.threadPoolSize = 1
        let lease = Duration.milliseconds(Int64(leaseSeconds * 1000))
        configuration.leaseDuration = lease
        configuration.heartbeatInterval = min(configuration.heartbeatInterval, lease / 4)
        configuration.recoveryInterval = min(configuration.recoveryInterval, lease / 4)
        if let purgeAfter {
            configuration.purgeFinishedAfter = .milliseconds(try TimeText.parseDuration(purgeAfter, field: "--purge-after"))
        }
        if let watchdog = notifier.watchdogInterval {
            // systemd's watchdog is fed while the scheduler's loop keeps turning: it turns at least every
            // heartbeat, so a heartbeat every quarter of WATCHDOG_USEC leaves a quarter for a slow store call.
            configuration.heartbeatInterval = min(configuration.heartbeatInterval, watchdog / 2)
        }
        let scheduler = Scheduler(store: store, configuration: configuration, logger: Logger(label: "rota.run"))
        try scheduler.registerExec()
        cron?.onFire { _ in scheduler.wake() }  // the store's own commits: nothing else tells the scheduler
        if let watchdog = notifier.watchdogInterval {
            notifier.watchdogCheck {
                guard let idle = scheduler.loopIdleTime, idle >= watchdog else { return nil }
                return "the scheduler's loop has not turned for \(idle) (a stuck store call?); systemd will restart rota"
            }
        }
        // READY=1 once the scheduler's loop serves: migrations are applied and the schedules loaded by then.
        let scheduleCount = cron == nil ? nil : try await store.schedules().filter(\.active).count
        scheduler.onServing {
            notifier.ready(status: "serving \(RunCommand.describe(scheduler.servedQueues))"
                + (scheduleCount.map { ", \($0) schedule\($0 == 1 ? "" : "s")" } ?? ""))
        }
        // SIGTERM or SIGINT: the service group shuts its services down gracefully (the scheduler drains
        // with --grace, then the schedules stop firing). The group listens for the first signal only; the
        // second one ends the grace at once. (Counted here too: if it comes before the group has acted on
        // the first, the group's graceful shutdown cannot lengthen a grace already ended.)
        let escalation = SignalHandler(signals: [SIGTERM, SIGINT]) { count in
            if count == 1 { notifier.stopping(status: "draining: no new claims, running tasks finish") }
            if count >= 2 { scheduler.shutdown(grace: .zero) }
        }
        // SIGHUP reloads the schedule files; a directory with errors keeps the last good schedules. Without
        // --queue, a queue that a reloaded schedule enqueues into is served from then on. Without --schedules
        // there is nothing to reload (and SIGHUP does not end the process). systemd hears RELOADING=1 before
        // and READY=1 after.
        let servesScheduleQueues = queues.isEmpty
        let (hangups, hangupSeen) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let hangup = SignalHandler(signals: [SIGHUP]) { _ in hangupSeen.yield() }
        let reloads = Task { [concurrency, cron] in
            // One reload at a time, in the order the signals came.
            for await _ in hangups {
                notifier.reloading()
                var outcome = "nothing to reload (no --schedules)"
                if let cron {
                    let reloaded = try? await cron.reload()
                    if case .synced? = reloaded {
                        outcome = "schedules reloaded"
                        if servesScheduleQueues {
                            await serveNewScheduleQueues(store: store, scheduler: scheduler, concurrency: concurrency)
                        }
                    } else {
                        outcome = "schedules not reloaded (errors); the last good ones stay"
                    }
                } else {
                    Logger(label: "rota.run").notice("SIGHUP: no --schedules, nothing to reload")
                }
                notifier.ready(status: "serving \(RunCommand.describe(scheduler.servedQueues)); \(outcome)")
            }
        }
        // Services stop in reverse order: the scheduler drains first, then the schedules stop firing. The
        // scheduler finishing by itself (--until-empty) shuts the rest down gracefully; any service throwing
        // cancels the others (the scheduler then hands its running tasks back at once) and is the error.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let cron { services.append(.init(service: cron, serviceName: "schedules")) }
        services.append(.init(service: scheduler, successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "scheduler"))
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "rota.run")))
        defer {
            escalation.cancel()
            hangup.cancel()
            hangupSeen.finish()
            reloads.cancel()
        }
        do {
            try await group.run()
        } catch {
            notifier.stopping(status: "stopping: \(error)")
            throw error
        }
        notifier.stopping(status: "stopped")  // --until-empty, or already sent at SIGTERM/SIGINT
    }

    /// `queue default (4 slots)`, `queues default, mail (4 slots each)`: what `STATUS=` says is served.
    static func describe(_ queues: [String: Int]) -> String {
        let names = queues.keys.sorted().joined(separator: ", ")
        let slots = Set(queues.values)
        let each = slots.count == 1 ? " (\(slots.first!) slot\(slots.first! == 1 ? "" : "s")\(queues.count > 1 ? " each" : ""))" : ""
        return "queue\(queues.count == 1 ? "" : "s") \(names)\(each)"
    }
}

/// Loads the cron schedules of `directory` into the store; any error in any file is fatal at start-up
/// (every error is printed as `file:line:column: message`) and nothing is loaded.
func loadSchedules(from directory: String, store: any TaskStore) async throws -> ScheduleService {
    let service = ScheduleService(store: store, directory: directory, logger: Logger(label: "rota.schedules"))
    switch try await store.loadSchedules(directory: directory) {
    case .rejected(let errors):
        throw scheduleErrors(errors, directory: directory)
    case .synced(let result, let loaded):
        Logger(label: "rota.schedules").notice("schedules loaded", metadata: [
            "directory": "\(directory)", "schedules": "\(loaded.specs.count)", "added": "\(result.added.count)",
            "changed": "\(result.changed.count)", "removed": "\(result.removed.count)",
        ])
    }
    return service
}

/// Prints every error of a schedule directory (`file:line:column: message`) and returns the usage error to exit with.
func scheduleErrors(_ errors: [ScheduleFileError], directory: String) -> CLIError {
    FileHandle.standardError.write(Data(errors.map { "\($0)\n" }.joined().utf8))
    return CLIError.usage("--schedules \(directory): \(errors.count) error\(errors.count == 1 ? "" : "s"); no schedule was loaded")
}

/// Serves, with `concurrency` slots each, the queues of active schedules that `scheduler` does not serve yet.
func serveNewScheduleQueues(store: any TaskStore, scheduler: Scheduler, concurrency: Int) async {
    let logger = Logger(label: "rota.schedules")
    do {
        let served = scheduler.servedQueues
        for queue in Set(try await store.schedules().filter(\.active).map(\.spec.queue)).sorted() where served[queue] == nil {
            try scheduler.serve(queue: queue, concurrency: concurrency)
            logger.notice("serving a queue a reloaded schedule uses", metadata: ["queue": "\(queue)", "concurrency": "\(concurrency)"])
        }
    } catch {
        logger.error("the queues of the reloaded schedules are not served", metadata: ["error": "\(error)"])
    }
}

/// Counts deliveries of `signals` and calls `handler` with the count (1 for the first signal).
final class SignalHandler {
    private let sources: [any DispatchSourceSignal]

    init(signals: [Int32], handler: @escaping @Sendable (Int) -> Void) {
        let queue = DispatchQueue(label: "rota.signals")
        let counter = SignalCounter()
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { handler(counter.increment()) }
            source.resume()
            return source
        }
    }

    func cancel() { for source in sources { source.cancel() } }
}

/// A counter touched only on the signal queue.
private final class SignalCounter: @unchecked Sendable {
    private var count = 0
    func increment() -> Int {
        count += 1
        return count
    }
}
