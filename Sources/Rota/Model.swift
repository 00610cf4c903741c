import Foundation

/// A task's identifier: the `tasks.id` row id, stable for the life of the database.
public typealias TaskID = Int64

/// The life of a task. These names are a contract: the API, the CLI and its `--json` output use exactly them.
///
/// `scheduled` (waiting for `run_at`) → `running` → `succeeded` | `scheduled` (retry) | `dead`;
/// `cancelled` from `scheduled`.
public enum TaskState: String, Sendable, Codable, CaseIterable, Hashable, CustomStringConvertible {
    /// Waiting for its `run_at` (a failed attempt that will be retried is `scheduled` again).
    case scheduled
    /// Claimed by a worker, whose lease is current.
    case running
    /// Finished successfully; its result is recorded.
    case succeeded
    /// Failed for good: out of attempts, or its error said not to retry.
    case dead
    /// Cancelled before it finished.
    case cancelled

    /// True for the states a task never leaves on its own (`succeeded`, `dead`, `cancelled`).
    public var isTerminal: Bool { self == .succeeded || self == .dead || self == .cancelled }

    public var description: String { rawValue }
}

/// How one attempt ended. These names are a contract (CLI `attempts_log[].outcome`).
public enum AttemptOutcome: String, Sendable, Codable, CaseIterable, Hashable, CustomStringConvertible {
    /// The handler returned a result.
    case succeeded
    /// The handler threw, or the command exited non-zero.
    case failed
    /// The attempt ran past its timeout.
    case timedOut = "timed_out"
    /// Its worker died (lease expired, or its process is gone).
    case lost
    /// It was cancelled, or handed back at shutdown.
    case cancelled

    public var description: String { rawValue }
}

extension Date {
    /// Milliseconds since 1970-01-01T00:00:00Z, the unit every instant is stored in.
    public var unixMillis: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }

    /// The instant `millis` milliseconds after 1970-01-01T00:00:00Z.
    public init(unixMillis millis: Int64) { self.init(timeIntervalSince1970: Double(millis) / 1000) }
}

extension Duration {
    /// The duration in whole milliseconds (rounded down).
    public var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}

/// A task to enqueue.
///
/// ```swift
/// let spec = TaskSpec(name: "email.send", payload: #"{"to":"a@b.c"}"#, queue: "mail", maxAttempts: 5)
/// let id = try await store.enqueue(spec).id
/// ```
public struct TaskSpec: Sendable, Equatable {
    /// The handler's name, e.g. `exec` or `email.send`. Must not be empty.
    public var name: String
    /// The payload, JSON text (an object, array or scalar). Validated at enqueue.
    public var payload: String
    /// The queue; each queue has its own concurrency limit.
    public var queue: String
    /// Higher runs first among due tasks of a queue. 0 (the default) or more.
    public var priority: Int
    /// When the task becomes due; nil means now.
    public var runAt: Date?
    /// How many attempts it may use (1 means no retry).
    public var maxAttempts: Int
    /// How long one attempt may run; nil means no limit.
    public var timeout: Duration?
    /// Makes the enqueue idempotent: a second enqueue with the same key returns the existing task.
    public var uniqueKey: String?
    /// The batch the task belongs to (its row id), if any.
    public var batchID: Int64?
    /// The item's identity within its batch (line number or explicit key).
    public var batchItem: String?
    /// The schedule that fired it, if any.
    public var schedule: String?
    /// The cron instant that fired it.
    public var fireAt: Date?
    /// How many times it may be lost while running alone on its worker (its worker process died) before it
    /// is `dead` as a task that crashes its worker; nil: ``TaskSpec/defaultPoisonLimit``. Losses never use
    /// up ``maxAttempts``.
    public var poisonLimit: Int?

    /// The poison limit of a task that names none: two losses while running alone.
    public static let defaultPoisonLimit = 2
    /// After this many losses a task is a suspect: its scheduler runs it alone, so a loss is its own.
    public static let suspectAfterLosses = 2

    /// Creates a task specification.
    public init(
        name: String,
        payload: String = "{}",
        queue: String = "default",
        priority: Int = 0,
        runAt: Date? = nil,
        maxAttempts: Int = 3,
        timeout: Duration? = nil,
        uniqueKey: String? = nil,
        batchID: Int64? = nil,
        batchItem: String? = nil,
        schedule: String? = nil,
        fireAt: Date? = nil,
        poisonLimit: Int? = nil
    ) {
        self.name = name
        self.payload = payload
        self.queue = queue
        self.priority = priority
        self.runAt = runAt
        self.maxAttempts = maxAttempts
        self.timeout = timeout
        self.uniqueKey = uniqueKey
        self.batchID = batchID
        self.batchItem = batchItem
        self.schedule = schedule
        self.fireAt = fireAt
        self.poisonLimit = poisonLimit
    }
}

/// What an enqueue did.
public struct EnqueueResult: Sendable, Equatable {
    /// The task's id: the new one, or the existing one for a known unique key, batch item or fire.
    public var id: TaskID
    /// False when an existing task with the same unique key (or batch item, or schedule fire) was returned.
    public var inserted: Bool

    /// Creates a result.
    public init(id: TaskID, inserted: Bool) {
        self.id = id
        self.inserted = inserted
    }
}

/// A task as stored, for queries (`rota list`, `rota show`, the Swift API).
public struct TaskRecord: Sendable, Equatable {
    /// The task's id.
    public var id: TaskID
    /// The handler's name.
    public var name: String
    /// Its queue.
    public var queue: String
    /// The payload, JSON text.
    public var payload: String
    /// Its state.
    public var state: TaskState
    /// Its priority (higher runs first).
    public var priority: Int
    /// When it is (or was) due.
    public var runAt: Date
    /// Attempts started so far.
    public var attempts: Int
    /// Attempts allowed.
    public var maxAttempts: Int
    /// Per-attempt time limit.
    public var timeout: Duration?
    /// The worker holding its lease while running.
    public var leaseOwner: String?
    /// When that lease expires.
    public var leaseUntil: Date?
    /// When the current (or last) attempt started.
    public var startedAt: Date?
    /// True when a cancel was requested while it ran.
    public var cancelRequested: Bool
    /// Its unique key.
    public var uniqueKey: String?
    /// The name of its batch.
    public var batch: String?
    /// Its identity within the batch.
    public var batchItem: String?
    /// The schedule that fired it.
    public var schedule: String?
    /// The cron instant that fired it.
    public var fireAt: Date?
    /// When it was enqueued.
    public var createdAt: Date
    /// When it last changed.
    public var updatedAt: Date
    /// When it reached `succeeded`, `dead` or `cancelled`.
    public var finishedAt: Date?
    /// The error of its most recent failed attempt.
    public var lastError: String?
    /// The result of its successful attempt, JSON text.
    public var result: String?
    /// Attempts lost with their worker (its process died or its lease expired). They do not use up
    /// ``maxAttempts``.
    public var losses: Int
    /// Of those, the ones lost while it ran alone on its worker: each is charged against ``poisonLimit``.
    public var soloLosses: Int
    /// Losses while running alone that make the task `dead` (it likely crashes its worker).
    public var poisonLimit: Int

    /// Creates a record (used by stores).
    public init(
        id: TaskID, name: String, queue: String, payload: String, state: TaskState, priority: Int, runAt: Date,
        attempts: Int, maxAttempts: Int, timeout: Duration?, leaseOwner: String?, leaseUntil: Date?,
        startedAt: Date?, cancelRequested: Bool, uniqueKey: String?, batch: String?, batchItem: String?,
        schedule: String?, fireAt: Date?, createdAt: Date, updatedAt: Date, finishedAt: Date?,
        lastError: String?, result: String?, losses: Int = 0, soloLosses: Int = 0,
        poisonLimit: Int = TaskSpec.defaultPoisonLimit
    ) {
        self.id = id; self.name = name; self.queue = queue; self.payload = payload; self.state = state
        self.priority = priority; self.runAt = runAt; self.attempts = attempts; self.maxAttempts = maxAttempts
        self.timeout = timeout; self.leaseOwner = leaseOwner; self.leaseUntil = leaseUntil
        self.startedAt = startedAt; self.cancelRequested = cancelRequested; self.uniqueKey = uniqueKey
        self.batch = batch; self.batchItem = batchItem; self.schedule = schedule; self.fireAt = fireAt
        self.createdAt = createdAt; self.updatedAt = updatedAt; self.finishedAt = finishedAt
        self.lastError = lastError; self.result = result
        self.losses = losses; self.soloLosses = soloLosses; self.poisonLimit = poisonLimit
    }
}

/// One finished attempt of a task.
public struct AttemptRecord: Sendable, Equatable {
    /// The task it belongs to.
    public var taskID: TaskID
    /// Its number, from 1.
    public var attempt: Int
    /// The worker that ran it.
    public var worker: String?
    /// When it started.
    public var startedAt: Date?
    /// When it ended (or was found lost).
    public var finishedAt: Date
    /// How it ended.
    public var outcome: AttemptOutcome
    /// Its error, for anything but success.
    public var error: String?
    /// Its result, JSON text, on success.
    public var result: String?

    /// Creates a record (used by stores).
    public init(taskID: TaskID, attempt: Int, worker: String?, startedAt: Date?, finishedAt: Date,
                outcome: AttemptOutcome, error: String?, result: String?) {
        self.taskID = taskID; self.attempt = attempt; self.worker = worker; self.startedAt = startedAt
        self.finishedAt = finishedAt; self.outcome = outcome; self.error = error; self.result = result
    }

    /// How long it ran, when its start is known.
    public var duration: Duration? {
        startedAt.map { .milliseconds(finishedAt.unixMillis - $0.unixMillis) }
    }
}

/// A task a worker has just claimed: everything needed to run it.
public struct ClaimedTask: Sendable, Equatable {
    /// The task's id.
    public var id: TaskID
    /// The handler's name.
    public var name: String
    /// Its queue.
    public var queue: String
    /// The payload, JSON text.
    public var payload: String
    /// This attempt's number (1 for the first run).
    public var attempt: Int
    /// Attempts allowed.
    public var maxAttempts: Int
    /// Per-attempt time limit.
    public var timeout: Duration?
    /// Its priority.
    public var priority: Int
    /// When it was due.
    public var runAt: Date
    /// When this attempt started (the claim instant).
    public var startedAt: Date
    /// Attempts of it lost with their worker so far: from ``TaskSpec/suspectAfterLosses`` on, its
    /// scheduler runs it alone (see ``TaskStore/markRunningAlone(_:attempt:worker:)``).
    public var losses: Int

    /// Creates a claimed task (used by stores).
    public init(id: TaskID, name: String, queue: String, payload: String, attempt: Int, maxAttempts: Int,
                timeout: Duration?, priority: Int, runAt: Date, startedAt: Date, losses: Int = 0) {
        self.id = id; self.name = name; self.queue = queue; self.payload = payload; self.attempt = attempt
        self.maxAttempts = maxAttempts; self.timeout = timeout; self.priority = priority; self.runAt = runAt
        self.startedAt = startedAt; self.losses = losses
    }
}

/// Which due tasks one queue wants, in a claim.
public struct ClaimRequest: Sendable, Equatable {
    /// The queue.
    public var queue: String
    /// The task names the worker has handlers for; nil claims any name.
    public var names: [String]?
    /// At most this many tasks (the queue's free slots).
    public var limit: Int
    /// Limits this request shares with other requests of the same claim (a queue's free slots, a pool's
    /// free threads): it takes at most what each of them has left, and what it claims is taken from each.
    public var budgets: [ClaimBudget]

    /// Creates a request.
    public init(queue: String, names: [String]?, limit: Int, budgets: [ClaimBudget] = []) {
        self.queue = queue
        self.names = names
        self.limit = limit
        self.budgets = budgets
    }
}

/// A limit shared by the requests of one claim that name its key. The first request naming a key sets
/// its limit; the requests are served in order, each taking what it claims from every budget it names.
///
/// ```swift
/// // Queue "default" has 8 free slots and the process pool 4; exec first, then the async handlers.
/// let slots = ClaimBudget(key: "queue:default", limit: 8), processes = ClaimBudget(key: "pool:process", limit: 4)
/// let requests = [ClaimRequest(queue: "default", names: ["exec"], limit: 4, budgets: [slots, processes]),
///                 ClaimRequest(queue: "default", names: ["email.send"], limit: 8, budgets: [slots])]
/// ```
public struct ClaimBudget: Sendable, Hashable {
    /// What the budget limits, e.g. `queue:default`.
    public var key: String
    /// How many tasks the requests that name it may claim together.
    public var limit: Int

    /// Creates a budget.
    public init(key: String, limit: Int) {
        self.key = key
        self.limit = limit
    }
}

/// What is left of the ``ClaimBudget``s of one claim turn, as its requests are served in order: the one
/// rule every store applies (a budget a request names is spent by what that request claimed).
public struct ClaimBudgetLedger: Sendable {
    private var left: [String: Int] = [:]

    /// A ledger with every budget whole.
    public init() {}

    /// How many tasks `request` may claim now: its limit, capped by what is left of each budget it names.
    public func limit(for request: ClaimRequest) -> Int {
        request.budgets.reduce(request.limit) { min($0, left[$1.key] ?? $1.limit) }
    }

    /// Records that `request` claimed `count` tasks: each budget it names has that much less left.
    public mutating func spend(_ count: Int, by request: ClaimRequest) {
        for budget in request.budgets { left[budget.key] = (left[budget.key] ?? budget.limit) - count }
    }
}

/// The end of one attempt, as the scheduler decided it.
public struct Completion: Sendable, Equatable {
    /// What happens to the task.
    public enum Resolution: Sendable, Equatable {
        /// The attempt succeeded; the task is `succeeded` with this result (JSON text).
        case succeeded(result: String?)
        /// The attempt failed; the task is `scheduled` again at `runAt`.
        case retry(outcome: AttemptOutcome, error: String, runAt: Date)
        /// The attempt failed and the task is `dead`.
        case dead(outcome: AttemptOutcome, error: String)
        /// The attempt was cancelled on request; the task is `cancelled`.
        case cancelled(reason: String)
        /// The worker is shutting down: the attempt is recorded as cancelled and the task is due again now,
        /// whatever its attempts (a shutdown is not the task's fault).
        case handBack(reason: String)
    }

    /// The task.
    public var taskID: TaskID
    /// The attempt's number (the one returned by the claim).
    public var attempt: Int
    /// The worker that holds the lease.
    public var worker: String
    /// When the attempt started.
    public var startedAt: Date
    /// When it ended.
    public var finishedAt: Date
    /// The decision.
    public var resolution: Resolution
    /// The task's queue and name when the caller knows them (the scheduler does, from the claim): the store
    /// then counts a success without reading them back (a RETURNING clause per row costs about a tenth of
    /// a task's whole lifecycle in SQLite).
    package var queueAndName: QueueAndName?

    /// Creates a completion.
    public init(taskID: TaskID, attempt: Int, worker: String, startedAt: Date, finishedAt: Date, resolution: Resolution) {
        self.taskID = taskID; self.attempt = attempt; self.worker = worker; self.startedAt = startedAt
        self.finishedAt = finishedAt; self.resolution = resolution
    }

    /// Equal when the public fields are (the internal queue and name are a hint to the store).
    public static func == (lhs: Completion, rhs: Completion) -> Bool {
        lhs.taskID == rhs.taskID && lhs.attempt == rhs.attempt && lhs.worker == rhs.worker && lhs.startedAt == rhs.startedAt
            && lhs.finishedAt == rhs.finishedAt && lhs.resolution == rhs.resolution
    }
}

/// A task's queue and name (see ``Completion``).
package struct QueueAndName: Sendable, Equatable {
    package var queue: String
    package var name: String
}

/// A worker (one scheduler process) as registered in the database.
public struct WorkerRecord: Sendable, Equatable {
    /// Its id, unique per run (host, pid and a random part).
    public var id: String
    /// The host it runs on.
    public var host: String
    /// Its process id.
    public var pid: Int32
    /// The queues it serves.
    public var queues: [String]
    /// The task names it has handlers for.
    public var taskNames: [String]
    /// Its total concurrency.
    public var concurrency: Int
    /// When it started.
    public var startedAt: Date
    /// Its last heartbeat.
    public var heartbeatAt: Date
    /// When it stopped cleanly, if it did.
    public var stoppedAt: Date?

    /// Creates a record.
    public init(id: String, host: String, pid: Int32, queues: [String], taskNames: [String], concurrency: Int,
                startedAt: Date, heartbeatAt: Date, stoppedAt: Date? = nil) {
        self.id = id; self.host = host; self.pid = pid; self.queues = queues; self.taskNames = taskNames
        self.concurrency = concurrency; self.startedAt = startedAt; self.heartbeatAt = heartbeatAt
        self.stoppedAt = stoppedAt
    }
}

/// What happened to one id in a cancel.
public enum CancelOutcome: Sendable, Equatable {
    /// It was `scheduled` and is now `cancelled`.
    case cancelled
    /// It is `running`: its worker is asked to stop it.
    case requested
    /// Its state does not allow a cancel (it already finished).
    case notCancellable(TaskState)
    /// No task has this id.
    case notFound
}

/// What happened to one id in a retry.
public enum RetryOutcome: Sendable, Equatable {
    /// It is `scheduled` again, due now.
    case rescheduled
    /// Its state does not allow a retry (it is scheduled, running or succeeded).
    case notRetryable(TaskState)
    /// No task has this id.
    case notFound
}

/// Filters for listing tasks. Empty filters list every task, newest first.
public struct TaskFilter: Sendable, Equatable {
    /// Only these states.
    public var states: [TaskState]
    /// Only this queue.
    public var queue: String?
    /// Only this task name.
    public var name: String?
    /// Only this batch (by name).
    public var batch: String?
    /// Only this schedule.
    public var schedule: String?
    /// Only tasks created at or after this instant.
    public var createdSince: Date?
    /// At most this many rows.
    public var limit: Int
    /// Only tasks with an id below this (for paging newest-first).
    public var beforeID: TaskID?

    /// Creates a filter.
    public init(states: [TaskState] = [], queue: String? = nil, name: String? = nil, batch: String? = nil,
                schedule: String? = nil, createdSince: Date? = nil, limit: Int = 50, beforeID: TaskID? = nil) {
        self.states = states; self.queue = queue; self.name = name; self.batch = batch; self.schedule = schedule
        self.createdSince = createdSince; self.limit = limit; self.beforeID = beforeID
    }
}

/// Counts and rates for `rota stats`.
public struct StoreStats: Sendable, Equatable {
    /// Tasks per state (every state present, zero included).
    public var states: [TaskState: Int]
    /// Tasks per queue and state.
    public var queues: [String: [TaskState: Int]]
    /// The oldest due `scheduled` task's `run_at`, if any task is due.
    public var oldestDueAt: Date?
    /// Tasks finished (succeeded or dead) in the last minute.
    public var finishedLastMinute: Int
    /// Tasks finished in the last hour.
    public var finishedLastHour: Int
    /// Scheduled tasks per name (for "no live worker handles NAME").
    public var scheduledByName: [String: Int]

    /// Creates stats.
    public init(states: [TaskState: Int], queues: [String: [TaskState: Int]], oldestDueAt: Date?,
                finishedLastMinute: Int, finishedLastHour: Int, scheduledByName: [String: Int]) {
        self.states = states; self.queues = queues; self.oldestDueAt = oldestDueAt
        self.finishedLastMinute = finishedLastMinute; self.finishedLastHour = finishedLastHour
        self.scheduledByName = scheduledByName
    }
}
