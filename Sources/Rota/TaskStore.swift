import Foundation

/// Everything the scheduler, the schedule service, batches and the admin tools need from storage.
///
/// The core speaks in tasks, not rows: all SQL lives in conformers (`SQLiteTaskStore` in `RotaSQLiteStore`,
/// a PostgreSQL store later), and ``MemoryTaskStore`` is the reference every store is tested against (the
/// conformance suite runs the same behavioural tests on each). What only one store can do is an optional
/// protocol (``ClaimTurnBlocking``, ``CommitWatching``, ``BackgroundCheckpointing``) that the scheduler
/// discovers with `as? any ...`.
///
/// Rules every conformer keeps:
/// - Every method that changes state is one transaction: it happens whole or not at all, and is durable
///   when it returns.
/// - Task specs reach the store already validated (``ValidatedSpecs``); the store never writes a spec that
///   validation refused.
/// - A completion applies only while its attempt still holds the lease (same task, attempt and worker, and
///   the task is `running`): a late result of a recovered attempt is recorded nowhere as a success.
/// - Claims take due `scheduled` tasks in the order priority (higher first), then `run_at`, then id.
/// - Calls made from async code never block a cooperative thread for long (a store that blocks runs its
///   work on threads of its own).
public protocol TaskStore: Sendable {
    // MARK: Enqueue

    /// The largest payload (and `on_complete` spec) this store accepts, in bytes.
    var maxPayloadBytes: Int { get }

    /// Enqueues validated specs in one transaction: all are written, or none. A spec whose unique key
    /// (`uniqueKey`, or batch and item, or schedule and fire instant) is known returns the existing task.
    /// Use ``enqueue(_:)-(TaskSpec)`` or ``enqueue(_:)-([TaskSpec])``, which validate first.
    /// - Returns: one result per spec, in order (`inserted == false` for a known key).
    /// - Throws: ``RotaError`` `.invalidInput` on field `batch_id` (`tasks[i].batch_id`) for a batch id that
    ///   does not exist (nothing written), `.busy`, `.full`.
    func enqueue(validated specs: ValidatedSpecs) async throws -> [EnqueueResult]

    // MARK: Running

    /// The scheduler's turn, in one transaction where the store can: records `completions` (see
    /// ``complete(_:)``), then claims for `requests`. Requests are served in order, each within its own limit
    /// and what is left of every ``ClaimBudget`` it names; each claimed task becomes `running`, its attempt
    /// count goes up by one and `worker` holds its lease until `leaseUntil`.
    /// - Returns: which completions applied, the tasks claimed (per request, highest priority first), and
    ///   whether some request took as many as it could (more may be due).
    func completeAndClaim(_ completions: [Completion], _ requests: [ClaimRequest], worker: String,
                          leaseUntil: Date, now: Date) async throws -> ClaimTurn

    /// The earliest `run_at` of a `scheduled` task of `queues` (and `names`, when given), due or not.
    func nextRunAt(queues: [String], names: [String]?) async throws -> Date?

    /// How many tasks of these queues (and names, when given) are `scheduled` (due or not) or `running`,
    /// whoever runs them. A scheduler with ``Scheduler/Configuration/untilEmpty`` stops when this is 0.
    func countUnfinished(queues: [String], names: [String]?) async throws -> Int

    // MARK: Workers and leases

    /// Registers (or re-registers, keeping its start) a worker.
    func registerWorker(_ worker: WorkerRecord) async throws

    /// Records a heartbeat and extends the leases of every task the worker runs.
    /// - Returns: the ids of its running tasks that a cancel was requested for.
    func heartbeat(worker: String, now: Date, leaseUntil: Date) async throws -> [TaskID]

    /// Marks a worker stopped (a clean exit).
    func stopWorker(_ id: String, at: Date) async throws

    /// All workers, live and stopped, most recent heartbeat first.
    func workers() async throws -> [WorkerRecord]

    /// Recovers tasks whose lease expired before `now`: each gets a `lost` attempt and goes back to
    /// `scheduled` (due now). A lost attempt does not use up the task's attempts (max attempts + 1), but
    /// counts in its losses; a loss while it ran alone (see ``markRunningAlone(_:attempt:worker:)``) is
    /// charged, and at its poison limit the task is `dead` instead, with a reason that says so. A task whose
    /// cancel was requested is `cancelled`.
    /// - Returns: the ids recovered.
    @discardableResult
    func recoverExpiredLeases(now: Date) async throws -> [TaskID]

    /// Recovers, at once, the running tasks of workers known to be dead (their process is gone), as
    /// ``recoverExpiredLeases(now:)`` does, with `reason` as the lost attempt's error.
    @discardableResult
    func recoverLeases(ofWorkers workers: [String], now: Date, reason: String) async throws -> [TaskID]

    /// Records that the attempt runs alone on its worker (nothing else in flight there), so that losing it
    /// is charged against its poison limit. Applies only while the attempt holds the lease.
    /// - Returns: whether it applied.
    func markRunningAlone(_ task: TaskID, attempt: Int, worker: String) async throws -> Bool

    // MARK: Operations

    /// Cancels tasks: `scheduled` ones at once; `running` ones are asked to stop (their worker sees it at
    /// its next heartbeat).
    func cancel(_ ids: [TaskID], now: Date) async throws -> [TaskID: CancelOutcome]

    /// Makes `dead` or `cancelled` tasks `scheduled` again, due now, with at least one more attempt.
    func retry(_ ids: [TaskID], now: Date) async throws -> [TaskID: RetryOutcome]

    /// Retries every task in `state` (`dead` or `cancelled`), optionally in one queue.
    /// - Returns: how many were rescheduled.
    func retryAll(state: TaskState, queue: String?, now: Date) async throws -> Int

    /// Deletes finished tasks (and their attempts) of `states` that finished before `olderThan`. Never
    /// touches `scheduled` or `running` tasks.
    /// - Returns: how many tasks were deleted.
    func purge(olderThan: Date, states: [TaskState]) async throws -> Int

    // MARK: Queries

    /// One task, or nil.
    func task(_ id: TaskID) async throws -> TaskRecord?

    /// A task's finished attempts, in order.
    func attempts(of id: TaskID) async throws -> [AttemptRecord]

    /// Tasks matching `filter`, newest (highest id) first.
    func list(_ filter: TaskFilter) async throws -> [TaskRecord]

    /// Counts per state and queue, throughput, the oldest due task.
    func stats(now: Date) async throws -> StoreStats

    /// The scheduled tasks that no live worker can run, per queue and name (no live worker both serves the
    /// queue and handles the name), optionally of one batch only.
    func unhandledTasks(now: Date, batch: Int64?) async throws -> [UnhandledTasks]

    // MARK: Schedules

    /// Makes the stored schedules match `specs`: new ones are added with `firstFire(spec)` as their next
    /// fire, changed ones are updated (their next fire recomputed when the timing changed), and schedules
    /// absent from `specs` are deactivated (their history stays).
    /// - Throws: ``RotaError`` `.invalidInput` for a bad spec (nothing written).
    func syncSchedules(_ specs: [ScheduleSpec], now: Date,
                       firstFire: @escaping @Sendable (ScheduleSpec) -> Date?) async throws -> ScheduleSyncResult

    /// Fires every active schedule whose next fire is at or before `now`, in one transaction: enqueues a
    /// task per planned instant (unique per schedule and instant, so no instant ever fires twice, across
    /// restarts, clock jumps and several schedulers) and advances the schedule to `plan`'s next fire.
    /// - Returns: the tasks enqueued (`inserted == false` for an instant that had already fired).
    func fireDueSchedules(now: Date, plan: @escaping @Sendable (ScheduleRecord) -> FirePlan) async throws -> [EnqueueResult]

    /// Every stored schedule, active ones first, by name.
    func schedules() async throws -> [ScheduleRecord]

    /// The earliest next fire of any active schedule.
    func nextScheduleFire() async throws -> Date?

    // MARK: Batches

    /// Creates the batch `spec.name`, or opens it for more items when it exists (a resumed submission).
    /// Opening unseals it until ``sealBatch(_:)``; an `onComplete` given replaces the stored one. Use
    /// ``openBatch(name:queue:onComplete:)``, which validates first.
    func openBatch(_ spec: BatchSpec) async throws -> BatchRecord

    /// Marks submission finished: completion (and its `on_complete` task) can fire from now on, at once
    /// when every item already finished.
    /// - Throws: ``RotaError`` `.notFound` for an unknown batch.
    func sealBatch(_ batch: Int64) async throws -> BatchRecord

    /// The batch named `name`, or nil.
    func batch(named name: String) async throws -> BatchRecord?

    /// Batches, newest first.
    func batches(limit: Int) async throws -> [BatchRecord]

    /// A batch's progress: its items per state and its recent throughput.
    /// - Throws: ``RotaError`` `.notFound` for an unknown batch.
    func batchStatus(_ name: String, now: Date) async throws -> BatchStatus

    /// Retries the batch's `dead` items (due now, with one more attempt).
    /// - Returns: how many were rescheduled.
    func retryBatch(_ name: String, now: Date) async throws -> Int

    /// Cancels the batch's unfinished items (`scheduled` at once, `running` on request).
    func cancelBatch(_ name: String, now: Date) async throws -> (cancelled: Int, requested: Int)
}

/// What one scheduler turn (``TaskStore/completeAndClaim(_:_:worker:leaseUntil:now:)``) did.
public struct ClaimTurn: Sendable, Equatable {
    /// For each completion given, whether it applied (false: its lease was lost).
    public var applied: [Bool]
    /// The tasks claimed, now `running` under the worker's lease.
    public var claimed: [ClaimedTask]
    /// True when some request claimed as many tasks as it could take (its limit, or what its budgets had
    /// left): more may be due, so the scheduler claims again at once.
    public var filled: Bool

    /// Creates a turn's outcome.
    public init(applied: [Bool], claimed: [ClaimedTask], filled: Bool) {
        self.applied = applied
        self.claimed = claimed
        self.filled = filled
    }
}

extension TaskStore {
    /// Validates and enqueues one task; durable when the call returns.
    /// - Returns: the new task's id, or the existing one for a known unique key (`inserted == false`).
    /// - Throws: ``RotaError`` `.invalidInput` naming the field (nothing written), `.busy`, `.full`.
    @discardableResult
    public func enqueue(_ spec: TaskSpec) async throws -> EnqueueResult {
        try await enqueue(validated: ValidatedSpecs([spec], maxPayloadBytes: maxPayloadBytes))[0]
    }

    /// Validates and enqueues many tasks in one transaction: all are written, or none.
    /// - Throws: ``RotaError`` `.invalidInput` naming the spec and field (`tasks[3].priority`).
    @discardableResult
    public func enqueue(_ specs: [TaskSpec]) async throws -> [EnqueueResult] {
        try await enqueue(validated: ValidatedSpecs(specs, maxPayloadBytes: maxPayloadBytes))
    }

    /// Claims due tasks for each request, in one transaction (a turn with no completions).
    public func claim(_ requests: [ClaimRequest], worker: String, leaseUntil: Date, now: Date) async throws -> [ClaimedTask] {
        try await completeAndClaim([], requests, worker: worker, leaseUntil: leaseUntil, now: now).claimed
    }

    /// Records the end of attempts, group-committed in one transaction (a turn with no claims). A
    /// completion whose lease the worker no longer holds (it expired and the task was recovered) is ignored.
    /// - Returns: for each completion, whether it was applied.
    @discardableResult
    public func complete(_ completions: [Completion]) async throws -> [Bool] {
        if completions.isEmpty { return [] }
        return try await completeAndClaim(completions, [], worker: "", leaseUntil: Date(), now: Date()).applied
    }

    /// Fires every due schedule by its cron expression and policies (see
    /// ``fireDueSchedules(now:plan:)``).
    /// - Parameter grace: a fire late by at most this much runs under every missed-run policy.
    @discardableResult
    public func fireDueSchedules(now: Date = Date(), grace: TimeInterval = 5) async throws -> [EnqueueResult] {
        try await fireDueSchedules(now: now, plan: { FirePlan.plan(for: $0, now: now, grace: grace) })
    }
}

// MARK: Optional capabilities

/// A store whose scheduler turn can run synchronously on a thread that may block. The scheduler's loop
/// has a thread of its own and calls this on its hot path, saving two thread hops per turn.
public protocol ClaimTurnBlocking: TaskStore {
    /// ``TaskStore/completeAndClaim(_:_:worker:leaseUntil:now:)``, blocking the calling thread.
    func completeAndClaimBlocking(_ completions: [Completion], _ requests: [ClaimRequest], worker: String,
                                  leaseUntil: Date, now: Date) throws -> ClaimTurn
}

/// A store that can tell when another process committed to it, so an idle scheduler claims what a
/// `rota enqueue` elsewhere added without polling the tasks.
public protocol CommitWatching: TaskStore {
    /// A value that changes when another connection commits (the store's own commits leave it alone).
    /// Cheap: no query of the tasks.
    func externalCommitVersion() throws -> Int64

    /// Calls `onChange` (on a thread of the watcher's) soon after anything may have committed, including
    /// this store's own commits; nil when the store cannot watch (the scheduler then polls
    /// ``externalCommitVersion()``). Stop the returned watch when done.
    func watchCommits(_ onChange: @escaping @Sendable () -> Void) -> (any CommitWatch)?
}

/// A running commit watch (see ``CommitWatching/watchCommits(_:)``).
public protocol CommitWatch: Sendable {
    /// Stops watching; no callback starts after it returns.
    func stop()
}

/// A store that can move housekeeping (SQLite: WAL checkpoints) to a thread of its own while a scheduler
/// runs, so no claim, flush or enqueue stalls on it.
public protocol BackgroundCheckpointing: TaskStore {
    /// Starts the background work, every `interval`; `onError` hears of failures (the store then falls back
    /// to doing it inline). nil when there is nothing to do (a read-only store).
    func startBackgroundCheckpoints(interval: Duration,
                                    onError: @escaping @Sendable (any Error) -> Void) throws -> (any BackgroundWork)?
}

/// Background work a store started; ``stop()`` ends it and waits for it.
public protocol BackgroundWork: Sendable {
    /// Stops the work and waits until it has stopped.
    func stop()
}

/// A store shared by schedulers on several hosts, which elects one of them (by a lease in the store) to run
/// once-per-cluster maintenance: expiry recovery, and whatever else must not run everywhere at once. A store
/// without it (one machine) lets every scheduler do that maintenance.
public protocol LeaderElecting: TaskStore {
    /// Takes the leadership for `worker` until `until` when no other leader's lease lasts past `now`, or
    /// renews it when `worker` holds it.
    /// - Returns: whether `worker` leads now.
    func lead(worker: String, now: Date, until: Date) async throws -> Bool

    /// Gives the leadership up if `worker` holds it (a clean stop), so another takes it at once.
    func resign(worker: String) async throws

    /// The current leader and its lease's end, if any.
    func leader() async throws -> (worker: String, until: Date)?
}

/// A store that runs several writing transactions at once without queueing them behind each other
/// (PostgreSQL, with a pool of connections; not SQLite, which has one writer at a time). The scheduler then
/// records a group of attempt ends in a transaction of its own, on another connection, while its next claim
/// turn runs, instead of inside that turn's transaction: the turn's critical path is the claim alone. Each
/// group is still one transaction, fenced by its leases, and acknowledged only once it committed.
public protocol ConcurrentWriting: TaskStore {}

/// A maintained count (per queue, task name and state: what `rota stats` reads) that disagrees with the tasks
/// themselves, as a store's check for `rota check` finds it.
public struct CountMismatch: Sendable, Equatable {
    /// The queue, task name and state counted.
    public var queue: String, name: String, state: String
    /// What the store's count says, and how many tasks there are.
    public var counted: Int, actual: Int

    /// Creates a mismatch.
    public init(queue: String, name: String, state: String, counted: Int, actual: Int) {
        self.queue = queue
        self.name = name
        self.state = state
        self.counted = counted
        self.actual = actual
    }
}

/// A batch's `total` or `finished` that disagrees with its items in the tasks table, as a store's check for
/// `rota check` finds it.
public struct BatchCountMismatch: Sendable, Equatable {
    /// The batch's name.
    public var batch: String
    /// `total` or `finished`.
    public var field: String
    /// What the batch's row says, and what its items say.
    public var counted: Int, actual: Int

    /// Creates a mismatch.
    public init(batch: String, field: String, counted: Int, actual: Int) {
        self.batch = batch
        self.field = field
        self.counted = counted
        self.actual = actual
    }
}
