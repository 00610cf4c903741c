import ArgumentParser
import Foundation
import Rota
@_spi(RotaTools) import RotaSQLiteStore

/// `rota _dev`: hidden tools for benchmarks and tests (synthetic data, a simulated worker).
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "_dev",
        abstract: "Tools for benchmarks and tests.",
        shouldDisplay: false,
        subcommands: [Populate.self, Churn.self, Worker.self, Crashy.self]
    )

    /// Inserts synthetic tasks (spread over states, queues, names and 30 days).
    struct Populate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "populate", abstract: "Insert synthetic tasks (see SQLiteTaskStore.insertSyntheticTasks).")

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "How many tasks.")
        var count: Int = 1_000_000

        func run() async throws {
            guard count > 0 else { throw CLIError.usage("--count must be positive") }
            let store = try global.openStore(.create, durability: .normal, quickCheck: false)
            let start = ContinuousClock.now
            let inserted = try store.insertSyntheticTasks(count: count, now: Date())
            print("inserted \(inserted) tasks in \(ContinuousClock.now - start)")
        }
    }

    /// Registers a worker row as it would be seen some time after its last heartbeat (for tests of liveness).
    struct Worker: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "worker", abstract: "Register a worker whose last heartbeat was some time ago.")

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "The worker id.")
        var id: String

        @Option(name: .long, help: "Queues it serves (comma-separated).")
        var queues: String = "default"

        @Option(name: .long, help: "Task names it handles (comma-separated).")
        var names: String = "exec"

        @Option(name: .long, help: "How long ago it last heartbeated (a duration).")
        var heartbeatAgo: String = "0s"

        @Flag(name: .long, help: "Mark it stopped.")
        var stopped = false

        func run() async throws {
            let ago = try TimeText.parseDuration(heartbeatAgo, field: "--heartbeat-ago")
            let store = try global.openStore(.create, quickCheck: false)
            let beat = Date(unixMillis: Date().unixMillis - ago)
            try await store.registerWorker(WorkerRecord(
                id: id, host: ProcessInfo.processInfo.hostName, pid: ProcessInfo.processInfo.processIdentifier,
                queues: queues.split(separator: ",").map(String.init), taskNames: names.split(separator: ",").map(String.init),
                concurrency: 4, startedAt: beat.addingTimeInterval(-60), heartbeatAt: beat))
            if stopped { try await store.stopWorker(id, at: beat) }
        }
    }

    /// A simulated worker: enqueues, claims and completes tasks in a loop, heartbeating, so tests can check
    /// the admin commands against a database another process is writing.
    struct Churn: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "churn", abstract: "Enqueue, claim and complete tasks in a loop (a simulated worker).")

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "Stop after this many seconds.")
        var seconds: Double = 5

        @Option(name: .long, help: "Tasks per round.")
        var batch: Int = 20

        @Option(name: .long, help: "The worker id to register.")
        var worker: String = "churn-\(ProcessInfo.processInfo.processIdentifier)"

        @Option(name: .long, help: "Stop cleanly (before --seconds) once this file exists.")
        var stopFile: String?

        func run() async throws {
            let store = try global.openStore(.create, durability: .normal, quickCheck: false)
            let started = Date()
            try await store.registerWorker(WorkerRecord(
                id: worker, host: ProcessInfo.processInfo.hostName, pid: ProcessInfo.processInfo.processIdentifier,
                queues: ["churn"], taskNames: ["churn.ok", "churn.fail"], concurrency: batch,
                startedAt: started, heartbeatAt: started))
            let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
            var rounds = 0
            var finished = 0
            while ContinuousClock.now < deadline && !(stopFile.map { FileManager.default.fileExists(atPath: $0) } ?? false) {
                rounds += 1
                let specs = (0..<batch).map { index in
                    TaskSpec(name: index % 5 == 0 ? "churn.fail" : "churn.ok", payload: #"{"round":\#(rounds),"i":\#(index)}"#,
                             queue: "churn", maxAttempts: 2)
                }
                _ = try store.enqueueSync(specs)
                let now = Date()
                let claimed = try store.claimSync([ClaimRequest(queue: "churn", names: nil, limit: batch)], worker: worker,
                                                  leaseUntil: now.addingTimeInterval(30), now: now)
                let done = Date()
                let completions = claimed.map { task in
                    Completion(taskID: task.id, attempt: task.attempt, worker: worker, startedAt: task.startedAt, finishedAt: done,
                               resolution: task.name == "churn.ok" ? .succeeded(result: #"{"ok":true}"#)
                                   : task.attempt < task.maxAttempts ? .retry(outcome: .failed, error: "simulated failure", runAt: done)
                                   : .dead(outcome: .failed, error: "simulated failure"))
                }
                finished += try store.completeSync(completions).filter { $0 }.count
                _ = try await store.heartbeat(worker: worker, now: Date(), leaseUntil: Date().addingTimeInterval(30))
            }
            try await store.stopWorker(worker, at: Date())
            print("rounds \(rounds), completions \(finished)")
        }
    }
}

extension DevCommand {
    /// A scheduler with in-process handlers, one of which kills its own process: for tests of the poison
    /// limit (a task that crashes its worker every time ends `dead`; the tasks beside it complete).
    struct Crashy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "crashy",
            abstract: "Run `ok` (succeeds) and `crash` (SIGKILLs this process) in process, until empty.")

        @OptionGroup var global: GlobalOptions

        @Option(name: .long, help: "Slots of the default queue.")
        var concurrency: Int = 4

        func run() async throws {
            let store = try global.openStore(.create, durability: .normal, quickCheck: false)
            let scheduler = Scheduler(store: store, configuration: .init(
                queues: ["default": concurrency], pollInterval: .milliseconds(20), untilEmpty: true))
            try scheduler.register("ok") { (_: Empty, _) in Empty() }
            try scheduler.register("crash") { (_: Empty, _) -> Empty in
                kill(getpid(), SIGKILL)
                return Empty()
            }
            try await scheduler.run()
        }
    }
}
