import Foundation
import Logging
import Synchronization
import Testing
@testable import Rota
@testable import RotaSQLiteStore

/// A fresh database file in a temporary directory, removed at deinit.
final class TempDatabase: Sendable {
    let directory: URL
    let path: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("rota-sched-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("rota.db").path
    }

    /// A new connection (store) to the file.
    func store(_ durability: Durability = .normal) throws -> SQLiteTaskStore {
        try SQLiteTaskStore(path: path, configuration: .init(durability: durability, quickCheck: false))
    }

    deinit { try? FileManager.default.removeItem(at: directory) }
}

/// Fast intervals for tests.
func testConfiguration(
    queues: [String: Int] = ["default": 8], threads: Int = 2, processes: Int = 4, untilEmpty: Bool = false
) -> Scheduler.Configuration {
    Scheduler.Configuration(
        queues: queues, threadPoolSize: threads, maxProcesses: processes, pollInterval: .milliseconds(20),
        leaseDuration: .seconds(30), heartbeatInterval: .milliseconds(50), recoveryInterval: .milliseconds(100),
        shutdownGrace: .seconds(5), cancelWait: .seconds(2), killGrace: .milliseconds(300),
        untilEmpty: untilEmpty, maxStoreBackoff: .milliseconds(200))
}

/// Counts how many are inside at once, and the most ever.
final class ConcurrencyGauge: Sendable {
    private let state = Mutex<(current: Int, peak: Int, total: Int)>((0, 0, 0))
    func enter() { state.withLock { $0.current += 1; $0.total += 1; $0.peak = max($0.peak, $0.current) } }
    func leave() { state.withLock { $0.current -= 1 } }
    var peak: Int { state.withLock { $0.peak } }
    var current: Int { state.withLock { $0.current } }
    var total: Int { state.withLock { $0.total } }
}

/// Something to await: fulfilled once (or after `count` calls).
final class Event: Sendable {
    private let state: Mutex<(remaining: Int, waiters: [CheckedContinuation<Void, Never>])>
    init(count: Int = 1) { state = Mutex((count, [])) }

    func fulfill() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.remaining -= 1
            guard state.remaining == 0 else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var isFulfilled: Bool { state.withLock { $0.remaining <= 0 } }

    func wait() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.remaining <= 0 { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Awaits `operation`, failing after `limit` (a guard against hangs, not a sleep). The operation is
/// cancelled on timeout but not awaited, so an operation that ignores cancellation cannot hang the test.
func within<T: Sendable>(_ limit: Duration, _ what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let once = OneShot<Result<T, any Error>>()
    let operationTask = Task {
        do { once.resume(.success(try await operation())) } catch { once.resume(.failure(error)) }
    }
    let timer = Task {
        try? await Task.sleep(for: limit)
        if Task.isCancelled { return }
        once.resume(.failure(TimedOut(what: what)))
        operationTask.cancel()
    }
    let result = await withCheckedContinuation { once.install($0) }
    timer.cancel()
    return try result.get()
}

/// Runs `scheduler` in the background; `stop()` shuts it down and awaits the end of `run()`.
struct RunningScheduler {
    let scheduler: Scheduler
    let task: Task<Void, any Error>

    init(_ scheduler: Scheduler) {
        self.scheduler = scheduler
        task = Task { try await scheduler.run() }
    }

    func stop(grace: Duration = .seconds(5)) async throws {
        scheduler.shutdown(grace: grace)
        try await within(.seconds(600), "the scheduler to stop") { try await task.value }
    }
}

/// Holds the threads that reach it until `count` have (then lets every later one through): blocking
/// handlers that must run at the same time meet here instead of sleeping and hoping to overlap.
final class ThreadRendezvous: Sendable {
    private let condition = NSCondition()
    private let arrived = Mutex(0)
    private let count: Int
    init(count: Int) { self.count = count }

    /// Blocks until `count` threads have arrived; false after `limit` (a guard against a hang).
    @discardableResult
    func arrive(limit: TimeInterval = 600) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let now = arrived.withLock { $0 += 1; return $0 }
        if now >= count { condition.broadcast(); return true }
        let deadline = Date().addingTimeInterval(limit)
        while arrived.withLock({ $0 }) < count {
            if !condition.wait(until: deadline) { return false }
        }
        return true
    }
}

/// A logger whose messages a test can wait for: the scheduler's lifecycle events (`scheduler draining`,
/// logged at debug once the loop has acted on a shutdown request) are events to await, not to sleep for.
final class LogRecorder: Sendable {
    private let state = Mutex<(messages: [String], waiters: [(String, CheckedContinuation<Void, Never>)])>(([], []))

    /// A logger at debug level that records here.
    var logger: Logger {
        Logger(label: "rota.test") { _ in Handler(recorder: self) }
    }

    /// Every message so far.
    var messages: [String] { state.withLock { $0.messages } }

    func record(_ message: String) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.messages.append(message)
            let matching = state.waiters.filter { message.contains($0.0) }.map(\.1)
            state.waiters.removeAll { message.contains($0.0) }
            return matching
        }
        for waiter in ready { waiter.resume() }
    }

    /// Returns once a message containing `text` has been logged.
    func wait(for text: String) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.messages.contains(where: { $0.contains(text) }) { return true }
                state.waiters.append((text, continuation))
                return false
            }
            if now { continuation.resume() }
        }
    }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var logLevel: Logger.Level = .debug
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { recorder.record(event.message.description) }
    }
}

/// Runs the scheduler with `untilEmpty` semantics: returns when nothing is left.
func runUntilEmpty(_ scheduler: Scheduler, limit: Duration = .seconds(600)) async throws {
    try await within(limit, "the scheduler to drain") { try await scheduler.run() }
}

let testLogger: Logger = {
    var logger = Logger(label: "rota.test")
    logger.logLevel = ProcessInfo.processInfo.environment["ROTA_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
    return logger
}()
