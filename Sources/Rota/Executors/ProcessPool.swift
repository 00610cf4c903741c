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

    /// Runs `command` to its end. On timeout or task cancellation the process group gets SIGTERM, then
    /// SIGKILL after `killGrace`, and the call returns once the child is gone.
    func run(_ command: ExecCommand, timeout: Duration?) async throws -> ExecResult {
        guard let program = command.argv.first, !program.isEmpty else {
            throw ExecError("argv must name a program (got \(command.argv))")
        }
        await permits.wait()
        defer { permits.signal() }
        guard let timeout else { return try await spawn(command, program: program) }
        return try await withThrowingTaskGroup(of: ExecResult?.self) { group in
            group.addTask { try await self.spawn(command, program: program) }
            group.addTask {
                try await Task.sleep(for: timeout)
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

/// A counting semaphore for Swift concurrency (waiters resume in order).
final class AsyncSemaphore: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>

    init(_ permits: Int) { state = Mutex(State(available: permits)) }

    func wait() async {
        let acquired = state.withLock { state -> Bool in
            if state.available > 0 {
                state.available -= 1
                return true
            }
            return false
        }
        if acquired { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.available > 0 {
                    state.available -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume()
    }
}
