import Foundation
import Logging
import NIOPosix
import Synchronization

/// What a handler knows about the attempt it runs, and the pools it may use.
///
/// ```swift
/// try await scheduler.register("report.build") { (payload: Report, context) in
///     context.logger.info("building", metadata: ["attempt": "\(context.attempt)"])
///     let pdf = try await context.runBlocking { try render(payload) }     // on the thread pool
///     let sent = try await context.runCommand(["lpr", pdf.path])          // on the process pool
///     return sent.exitCode
/// }
/// ```
public struct TaskContext: Sendable {
    /// The task's id.
    public let taskID: TaskID
    /// The task's name.
    public let name: String
    /// The queue it was claimed from.
    public let queue: String
    /// This attempt's number, from 1.
    public let attempt: Int
    /// The attempts the task may use.
    public let maxAttempts: Int
    /// When this attempt started.
    public let startedAt: Date
    /// This attempt's time limit, if any (the task's own, else its handler's default).
    public let timeout: Duration?
    let baseLogger: Logger
    let flag: CancellationFlag
    let pools: Pools

    /// A logger with `task`, `attempt`, `name` and `queue` metadata.
    public var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "task"] = "\(taskID)"
        logger[metadataKey: "attempt"] = "\(attempt)"
        logger[metadataKey: "name"] = "\(name)"
        logger[metadataKey: "queue"] = "\(queue)"
        return logger
    }

    /// True once the attempt was cancelled: its timeout passed, a cancel was requested, or the scheduler is
    /// shutting down. Blocking (thread-pool) handlers should check it in long loops; async handlers also
    /// see ordinary task cancellation.
    public var isCancelled: Bool { flag.isSet || Task.isCancelled }

    /// Throws `CancellationError` when ``isCancelled``.
    public func checkCancellation() throws {
        if isCancelled { throw CancellationError() }
    }

    /// Runs a blocking closure on the scheduler's thread pool and awaits its value (Python's
    /// `run_in_executor`). The cooperative pool is never blocked.
    /// - Throws: the closure's error, or `CancellationError` if the task is cancelled before it starts.
    public func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pools.threads.runIfActive(body)
    }

    /// Runs a command on the scheduler's process pool (in its own process group) and awaits its end.
    /// When every slot of the pool is busy it waits for one; that wait ends with the task's cancellation
    /// or the timeout.
    ///
    /// - Parameters:
    ///   - command: what to run.
    ///   - timeout: how long it may wait for a slot and run; past it the group gets SIGTERM, then SIGKILL
    ///     after the pool's grace.
    /// - Returns: the exit status and output tails; a non-zero exit is a result, not an error.
    /// - Throws: ``ExecError`` when the command cannot be started or times out; `CancellationError` when
    ///   the task is cancelled before the command started.
    public func runCommand(_ command: ExecCommand, timeout: Duration? = nil) async throws -> ExecResult {
        try await pools.processes.run(command, timeout: timeout)
    }

    /// Runs `argv` on the process pool, inheriting the environment and working directory.
    public func runCommand(_ argv: [String], timeout: Duration? = nil) async throws -> ExecResult {
        try await runCommand(ExecCommand(argv: argv), timeout: timeout)
    }
}

/// A flag set once when an attempt is cancelled (read by blocking handlers on other threads).
final class CancellationFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}

/// The scheduler's pools, shared by its executors and reachable from handlers.
final class Pools: Sendable {
    let threads: NIOThreadPool
    let processes: ProcessPool
    /// Set by the first ``shutdown()``; its threads' end is awaited with ``threadsStopped()``.
    private let shutdownState = Mutex<(started: Bool, stopped: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, false, []))

    init(threads: Int, processes: Int, killGrace: Duration, outputTailBytes: Int) {
        self.threads = NIOThreadPool(numberOfThreads: max(1, threads))
        self.threads.start()
        self.processes = ProcessPool(limit: processes, killGrace: killGrace, tailBytes: outputTailBytes)
    }

    /// Shuts the thread pool down, once (later calls do nothing): from now on it refuses work
    /// (``TaskContext/runBlocking(_:)`` throws `CancellationError`), and its threads exit once the closure
    /// each is running returns. Does not wait for them: a blocking handler that ignores cancellation may
    /// hold its thread forever, and whoever shuts down must not hang on it.
    func shutdown() {
        let first = shutdownState.withLock { state -> Bool in
            defer { state.started = true }
            return !state.started
        }
        guard first else { return }
        threads.shutdownGracefully { [self] _ in
            let waiters = shutdownState.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.stopped = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    /// Waits until every thread of the pool has exited, after ``shutdown()``.
    func threadsStopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = shutdownState.withLock { state -> Bool in
                if state.stopped { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
