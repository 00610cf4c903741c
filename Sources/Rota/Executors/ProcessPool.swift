import Foundation
import Subprocess
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A command for the process pool: the payload of the built-in `exec` task.
///
/// ```json
/// {"argv": ["/usr/local/bin/backup", "--full"], "env": {"LANG": "C"}, "cwd": "/var/backups"}
/// ```
public struct ExecCommand: Codable, Sendable, Equatable {
    /// The program and its arguments. A program without `/` is looked up in `PATH`.
    public var argv: [String]
    /// Variables added to (or replacing those of) the scheduler's environment.
    public var env: [String: String]?
    /// The working directory; nil means the scheduler's.
    public var cwd: String?

    /// Creates a command.
    public init(argv: [String], env: [String: String]? = nil, cwd: String? = nil) {
        self.argv = argv
        self.env = env
        self.cwd = cwd
    }
}

/// How a command ended: the result of a successful `exec` task (`{"exit_code":0,"stdout":"…","stderr":"…"}`).
public struct ExecResult: Codable, Sendable, Equatable {
    /// The exit status, when it exited.
    public var exitCode: Int32?
    /// The signal that ended it, when one did.
    public var signal: Int32?
    /// The tail of its standard output (UTF-8, invalid bytes replaced).
    public var stdout: String
    /// The tail of its standard error.
    public var stderr: String

    /// True when it exited with status 0.
    public var succeeded: Bool { exitCode == 0 }

    /// Creates a result.
    public init(exitCode: Int32?, signal: Int32?, stdout: String, stderr: String) {
        self.exitCode = exitCode
        self.signal = signal
        self.stdout = stdout
        self.stderr = stderr
    }

    enum CodingKeys: String, CodingKey {
        case exitCode = "exit_code"
        case signal, stdout, stderr
    }

    /// "exit status 3" or "killed by signal 9".
    public var statusDescription: String {
        if let exitCode { return "exit status \(exitCode)" }
        if let signal { return "killed by signal \(signal)" }
        return "unknown status"
    }
}

/// A command that could not run to its end.
public struct ExecError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public let message: String
    /// True when the command ran past its timeout (and was terminated).
    public let timedOut: Bool
    /// Creates the error.
    public init(_ message: String, timedOut: Bool = false) {
        self.message = message
        self.timedOut = timedOut
    }
    /// The message.
    public var description: String { message }
}

/// Runs commands in child processes, each in its own process group, at most `limit` at a time.
final class ProcessPool: Sendable {
    let limit: Int
    let killGrace: Duration
    let tailBytes: Int
    private let permits: AsyncSemaphore

    init(limit: Int, killGrace: Duration, tailBytes: Int) {
        self.limit = max(1, limit)
        self.killGrace = killGrace
        self.tailBytes = max(256, tailBytes)
        self.permits = AsyncSemaphore(self.limit)
    }

    /// How many calls wait for a free slot now (for tests and stats).
    var waiting: Int { permits.waiting }

    /// Runs `command` to its end. On timeout or task cancellation the process group gets SIGTERM, then
    /// SIGKILL after `killGrace`, and the call returns once the child is gone.
    ///
    /// The wait for a free slot (at most `limit` commands run at once) counts against `timeout` and ends
    /// when the calling task is cancelled: a command that never started throws at once, without waiting
    /// for the commands ahead of it.
    /// - Throws: ``ExecError`` (`timedOut`) when `timeout` passes, waiting or running; `CancellationError`
    ///   when the task is cancelled while it waits for a slot.
    func run(_ command: ExecCommand, timeout: Duration?) async throws -> ExecResult {
        guard let program = command.argv.first, !program.isEmpty else {
            throw ExecError("argv must name a program (got \(command.argv))")
        }
        try Task.checkCancellation()  // a cancelled task starts no command
        let clock = ContinuousClock()
        let deadline = timeout.map { clock.now.advanced(by: $0) }
        switch await permits.wait(until: deadline) {
        case .acquired: break
        case .cancelled: throw CancellationError()
        case .deadlinePassed:
            throw ExecError("\(program) timed out after \(timeout ?? .zero) waiting for a free process slot (all \(limit) in use); it never started",
                            timedOut: true)
        }
        defer { permits.signal() }
        guard let timeout, let deadline else { return try await spawn(command, program: program) }
        return try await withThrowingTaskGroup(of: ExecResult?.self) { group in
            group.addTask { try await self.spawn(command, program: program) }
            group.addTask {
                try await Task.sleep(until: deadline, clock: clock)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw CancellationError() }
            if let result = first { return result }
            group.cancelAll()
            // Wait for the child to be terminated (SIGTERM to its group, SIGKILL after the grace).
            _ = try? await group.next()
            throw ExecError("\(program) timed out after \(timeout); its process group was terminated", timedOut: true)
        }
    }

    private func spawn(_ command: ExecCommand, program: String) async throws -> ExecResult {
        var options = PlatformOptions()
        options.processGroupID = 0
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: killGrace)]
        var environment = Environment.inherit
        if let env = command.env, !env.isEmpty {
            var updates: [Environment.Key: String?] = [:]
            for (key, value) in env { updates[Environment.Key(stringLiteral: key)] = value }
            environment = environment.updating(updates)
        }
        let executable: Executable = program.contains("/") ? .path(.init(program)) : .name(program)
        let tailBytes = self.tailBytes
        let outcome: ExecutionResult<(String, String), SequenceOutput, SequenceOutput>
        do {
            outcome = try await Subprocess.run(
                executable,
                arguments: Arguments(Array(command.argv.dropFirst())),
                environment: environment,
                workingDirectory: command.cwd.map { .init($0) },
                platformOptions: options,
                input: .none,
                output: .sequence,
                error: .sequence
            ) { execution in
                async let err = Self.tail(of: execution.standardError, bytes: tailBytes)
                let out = try await Self.tail(of: execution.standardOutput, bytes: tailBytes)
                return (out, try await err)
            }
        } catch let error as SubprocessError {
            throw ExecError("cannot run \(program): \(error)")
        }
        let (stdout, stderr) = outcome.closureResult
        switch outcome.terminationStatus {
        case .exited(let code):
            return ExecResult(exitCode: Int32(code), signal: nil, stdout: stdout, stderr: stderr)
        case .signaled(let signal):
            return ExecResult(exitCode: nil, signal: Int32(signal), stdout: stdout, stderr: stderr)
        }
    }

    /// Reads a stream to its end, keeping its last `bytes` bytes.
    private static func tail(of stream: SubprocessOutputSequence, bytes limit: Int) async throws -> String {
        var kept: [UInt8] = []
        kept.reserveCapacity(min(limit, 4096))
        for try await buffer in stream {
            buffer.withUnsafeBytes { raw in kept.append(contentsOf: raw) }
            if kept.count > 2 * limit { kept.removeFirst(kept.count - limit) }
        }
        if kept.count > limit { kept.removeFirst(kept.count - limit) }
        return String(decoding: kept, as: UTF8.self)
    }
}

/// A counting semaphore for Swift concurrency (waiters resume in order). A waiter leaves the line when
/// its task is cancelled or its deadline passes.
final class AsyncSemaphore: Sendable {
    /// How a wait ended.
    enum Outcome: Sendable, Equatable {
        /// The caller holds a permit; it must ``signal()`` once done.
        case acquired
        /// The waiting task was cancelled (no permit is held).
        case cancelled
        /// The deadline passed first (no permit is held).
        case deadlinePassed
    }

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Outcome, Never>
    }

    private struct State {
        var available: Int
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }
    private let state: Mutex<State>

    init(_ permits: Int) { state = Mutex(State(available: permits)) }

    /// The number of tasks waiting for a permit (for tests).
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Waits for a permit, until `deadline` (nil: no limit) or the cancellation of the calling task.
    /// A permit free at once is taken even by a cancelled task (the command then sees the cancellation).
    func wait(until deadline: ContinuousClock.Instant? = nil) async -> Outcome {
        let id = state.withLock { state -> UInt64? in
            if state.available > 0 {
                state.available -= 1
                return nil
            }
            state.nextID += 1
            return state.nextID
        }
        guard let id else { return .acquired }
        let timer = Mutex<Task<Void, Never>?>(nil)
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                let now = state.withLock { state -> Outcome? in
                    if state.available > 0 {
                        state.available -= 1
                        return .acquired
                    }
                    // A cancellation before this point found no waiter to remove: it is seen here.
                    if Task.isCancelled { return .cancelled }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return nil
                }
                if let now {
                    continuation.resume(returning: now)
                    return
                }
                if let deadline {
                    timer.withLock {
                        $0 = Task { [self] in
                            try? await Task.sleep(until: deadline, clock: .continuous)
                            if !Task.isCancelled { leave(id, .deadlinePassed) }
                        }
                    }
                }
            }
        } onCancel: {
            leave(id, .cancelled)
        }
        timer.withLock { $0?.cancel() }
        return outcome
    }

    /// Takes waiter `id` out of the line (if it still waits) and resumes it with `outcome`.
    private func leave(_ id: UInt64, _ outcome: Outcome) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(returning: outcome)
    }

    /// Returns a permit: the longest waiter gets it, else it becomes available.
    func signal() {
        let waiter = state.withLock { state -> Waiter? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.continuation.resume(returning: .acquired)
    }
}
