import Foundation

/// Everything the scheduler and the admin tools need from storage. All SQL lives in conformers
/// (``SQLiteTaskStore``); the scheduler speaks in tasks, not rows, so another database can conform later.
///
/// Every method that changes state is one transaction: it happens whole or not at all.
public protocol TaskStore: Sendable {
    // MARK: Enqueue

    /// Enqueues one task; durable when the call returns.
    /// - Returns: the new task's id, or the existing one for a known unique key (`inserted == false`).
    /// - Throws: ``RotaError`` `.invalidInput` naming the field (nothing written), `.busy`, `.full`.
    func enqueue(_ spec: TaskSpec) async throws -> EnqueueResult

    /// Enqueues many tasks in one transaction: all are written, or none.
    func enqueue(_ specs: [TaskSpec]) async throws -> [EnqueueResult]

    // MARK: Running

    /// Claims due tasks for each request, in one transaction: each becomes `running`, its attempt count
    /// goes up by one and `worker` holds its lease until `leaseUntil`. Requests are served in order, each
    /// within its own limit and what is left of every ``ClaimBudget`` it names.
    func claim(_ requests: [ClaimRequest], worker: String, leaseUntil: Date, now: Date) async throws -> [ClaimedTask]

    /// Records the end of attempts, group-committed in one transaction. A completion whose lease the
    /// worker no longer holds (it expired and the task was recovered) is ignored.
    /// - Returns: for each completion, whether it was applied.
    @discardableResult
    func complete(_ completions: [Completion]) async throws -> [Bool]

    /// The earliest `run_at` of a `scheduled` task the worker could claim, if any.
    func nextRunAt(queues: [String], names: [String]?) async throws -> Date?

    /// How many tasks of these queues (and names, when given) are `scheduled` (due or not) or `running`,
    /// whoever runs them. `rota run --until-empty` stops when this is 0.
    func countUnfinished(queues: [String], names: [String]?) async throws -> Int

    // MARK: Workers and leases

    /// Registers (or re-registers) a worker.
    func registerWorker(_ worker: WorkerRecord) async throws

    /// Records a heartbeat and extends the leases of every task the worker runs.
    /// - Returns: the ids of its running tasks that a cancel was requested for.
    func heartbeat(worker: String, now: Date, leaseUntil: Date) async throws -> [TaskID]

    /// Marks a worker stopped (a clean exit).
    func stopWorker(_ id: String, at: Date) async throws

    /// All workers, live and stopped, most recent heartbeat first.
    func workers() async throws -> [WorkerRecord]

    /// Recovers tasks whose lease expired before `now`: each gets a `lost` attempt and goes back to
    /// `scheduled` (due now), or to `dead` past its max attempts.
    /// - Returns: the ids recovered.
    @discardableResult
    func recoverExpiredLeases(now: Date) async throws -> [TaskID]

    /// Recovers, at once, the running tasks of workers known to be dead (their process is gone).
    @discardableResult
    func recoverLeases(ofWorkers workers: [String], now: Date, reason: String) async throws -> [TaskID]

    // MARK: Operations

    /// Cancels tasks: `scheduled` ones at once; `running` ones are asked to stop.
    func cancel(_ ids: [TaskID], now: Date) async throws -> [TaskID: CancelOutcome]

    /// Makes `dead` or `cancelled` tasks `scheduled` again, due now, with at least one more attempt.
    func retry(_ ids: [TaskID], now: Date) async throws -> [TaskID: RetryOutcome]

    /// Retries every task in `state` (`dead` or `cancelled`), optionally in one queue.
    /// - Returns: how many were rescheduled.
    func retryAll(state: TaskState, queue: String?, now: Date) async throws -> Int

    /// Deletes finished tasks (and their attempts) that finished before `olderThan`. Never touches
    /// `scheduled` or `running` tasks.
    /// - Returns: how many tasks were deleted.
    func purge(olderThan: Date, states: [TaskState]) async throws -> Int

    // MARK: Queries

    /// One task, or nil.
    func task(_ id: TaskID) async throws -> TaskRecord?

    /// A task's finished attempts, in order.
    func attempts(of id: TaskID) async throws -> [AttemptRecord]

    /// Tasks matching `filter`, newest first.
    func list(_ filter: TaskFilter) async throws -> [TaskRecord]

    /// Counts per state and queue, throughput, the oldest due task.
    func stats(now: Date) async throws -> StoreStats
}
