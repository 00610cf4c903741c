import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Fires durable cron schedules while it runs: at each due instant, one transaction enqueues the task
/// (unique per schedule and instant) and advances the schedule, so restarts, clock jumps and several
/// schedulers on one file never fire an instant twice.
///
/// ```swift
/// let schedules = ScheduleService(store: store, directory: "schedules")
/// if case .rejected(let errors) = try await schedules.reload() { errors.forEach { print($0) } }
/// try await withThrowingDiscardingTaskGroup { group in
///     group.addTask { try await scheduler.run() }
///     group.addTask { try await schedules.run() }
/// }
/// ```
public final class ScheduleService: Service, Sendable {
    /// The store the schedules live in.
    public let store: any TaskStore
    /// The schedule-file directory (re)loaded by ``reload()``.
    public let directory: String
    /// A fire late by at most this much runs under every missed-run policy (it is on time, not missed).
    public let grace: TimeInterval
    /// The longest sleep between checks (a schedule added by another process is noticed within it).
    public let maxSleep: Duration
    private let logger: Logger
    private let fireHooks = Mutex<[@Sendable (Int) -> Void]>([])

    /// Creates a service for the schedule files in `directory`.
    public init(store: any TaskStore, directory: String, grace: TimeInterval = 5, maxSleep: Duration = .seconds(1),
                logger: Logger = Logger(label: "rota.schedules")) {
        self.store = store
        self.directory = directory
        self.grace = grace
        self.maxSleep = maxSleep
        self.logger = logger
    }

    /// Loads the directory and makes the stored schedules match it. A directory with any error changes
    /// nothing: the last good schedules keep firing (call it again on SIGHUP).
    /// - Returns: what was synced, or every error as `file:line:column: message`.
    @discardableResult
    public func reload() async throws -> ScheduleReload {
        let outcome = try await store.loadSchedules(directory: directory)
        switch outcome {
        case .synced(let result, _):
            logger.notice("schedules loaded", metadata: [
                "directory": "\(directory)", "added": "\(result.added.count)", "changed": "\(result.changed.count)",
                "removed": "\(result.removed.count)",
            ])
        case .rejected(let errors):
            for error in errors { logger.error("\(error.description)") }
            logger.error("schedules not reloaded; the last good schedules stay", metadata: ["errors": "\(errors.count)"])
        }
        return outcome
    }

    /// Calls `hook` with the number of tasks enqueued after each firing that enqueued some. A scheduler
    /// over the same store should be woken by it (``Scheduler/wake()``): the store's own commits are not
    /// commits by another process, so nothing else tells the scheduler before its next poll.
    ///
    /// ```swift
    /// schedules.onFire { _ in scheduler.wake() }
    /// ```
    public func onFire(_ hook: @escaping @Sendable (Int) -> Void) {
        fireHooks.withLock { $0.append(hook) }
    }

    /// Fires what is due now.
    /// - Returns: how many tasks were enqueued.
    @discardableResult
    public func fireDue(now: Date = Date()) async throws -> Int {
        let fired = try await store.fireDueSchedules(now: now, grace: grace).filter(\.inserted)
        for result in fired { logger.debug("schedule fired", metadata: ["task": "\(result.id)"]) }
        if !fired.isEmpty {
            for hook in fireHooks.withLock({ $0 }) { hook(fired.count) }
        }
        return fired.count
    }

    /// Fires due schedules until cancelled or a graceful shutdown; store errors are logged and retried.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var backoff = Duration.milliseconds(50)
            while !Task.isCancelled {
                var sleep = self.maxSleep
                do {
                    try await self.fireDue()
                    if let next = try await self.store.nextScheduleFire() {
                        let wait = Duration.milliseconds(max(5, next.unixMillis - Date().unixMillis))
                        sleep = min(sleep, wait)
                    }
                    backoff = .milliseconds(50)
                } catch {
                    self.logger.warning("firing schedules failed; retrying", metadata: ["error": "\(error)"])
                    sleep = backoff
                    backoff = min(backoff * 2, .seconds(5))
                }
                do { try await Task.sleep(for: sleep) } catch { return }
            }
        }
    }
}
