import Foundation
import Synchronization

/// A ``TaskStore`` that keeps everything in memory: for unit tests of code that enqueues or runs tasks,
/// and the reference every store is tested against.
///
/// It behaves as `SQLiteTaskStore` does, observably: ids count up from 1, unique keys return the existing
/// task, claims take due tasks by priority, `run_at` and id, completions apply only under their lease,
/// batches complete (and enqueue their `on_complete` task once), schedules fire each instant once. Instants
/// are kept in whole milliseconds, as SQLite stores them, so records compare equal across the two stores.
/// Nothing survives the process: it is not for production.
///
/// Run a ``Scheduler`` over it in a test, with ``Scheduler/Configuration/untilEmpty`` so that
/// ``Scheduler/run()`` returns once every task finished:
///
/// ```swift
/// import Rota
/// import Testing
///
/// struct Greeting: Codable, Sendable { var name: String }
///
/// @Test func greets() async throws {
///     let store = MemoryTaskStore()
///     let scheduler = Scheduler(store: store, configuration: .init(queues: ["default": 4], untilEmpty: true))
///     try scheduler.register("greet") { (greeting: Greeting, _) in "hello \(greeting.name)" }
///     let id = try await scheduler.enqueue("greet", payload: Greeting(name: "ada"))
///     try await scheduler.run()                 // returns when nothing is left to run
///     let task = try #require(try await store.task(id))
///     #expect(task.state == .succeeded)
///     #expect(task.result == #""hello ada""#)
/// }
/// ```
///
/// Or use it directly, as any store:
///
/// ```swift
/// let store = MemoryTaskStore()
/// let id = try await store.enqueue(TaskSpec(name: "report", payload: #"{"day":"2026-01-31"}"#)).id
/// let claimed = try await store.claim([ClaimRequest(queue: "default", names: nil, limit: 10)],
///                                     worker: "test", leaseUntil: Date() + 60, now: Date())
/// ```
///
/// Every method is one atomic step under one lock (a `Mutex`): it happens whole or not at all, and never
/// waits for long, so the scheduler's loop calls it directly (``ClaimTurnBlocking``). The closures given to
/// ``syncSchedules(_:now:firstFire:)`` and ``fireDueSchedules(now:plan:)`` run under that lock: they must
/// not call the store.
public final class MemoryTaskStore: TaskStore, ClaimTurnBlocking, Sendable {
    /// The largest payload (and `on_complete` spec) this store accepts, in bytes.
    public let maxPayloadBytes: Int

    let state = Mutex(State())

    /// Creates an empty store.
    /// - Parameter maxPayloadBytes: the largest payload accepted at enqueue, in bytes (1 MiB by default,
    ///   as for `SQLiteTaskStore`).
    public init(maxPayloadBytes: Int = 1 << 20) {
        self.maxPayloadBytes = maxPayloadBytes
    }

    /// The clock, in milliseconds: what SQLite's store stamps enqueues and batches with.
    static func now() -> Int64 { Date().unixMillis }

    // MARK: Enqueue

    /// Enqueues validated specs at once, all or none (see ``TaskStore/enqueue(validated:)``). A task without
    /// `runAt` is due now, by the clock; ids are one more than the largest id held, as SQLite gives rowids.
    /// - Throws: ``RotaError`` `.invalidInput` (field `batch_id`, or `tasks[i].batch_id`) for a new task of a
    ///   batch id that does not exist, as `SQLiteTaskStore` refuses it; nothing is written then.
    public func enqueue(validated specs: ValidatedSpecs) async throws -> [EnqueueResult] {
        try enqueueNow(specs.specs)
    }

    /// Inserts validated specs at once: all, or (for a batch id that does not exist) none.
    func enqueueNow(_ specs: [TaskSpec]) throws -> [EnqueueResult] {
        let now = Self.now()
        return try state.withLock { state in
            // First, without changing anything: which specs are new (a key may repeat within the call), and
            // does each new one's batch exist? SQLite refuses the whole transaction at the first that does not.
            var keys: Set<String> = [], items: Set<BatchItemKey> = [], fires: Set<FireKey> = []
            for (index, spec) in specs.enumerated() {
                let fireAt = spec.fireAt?.unixMillis
                if state.existing(uniqueKey: spec.uniqueKey, batchID: spec.batchID, batchItem: spec.batchItem,
                                  schedule: spec.schedule, fireAt: fireAt) != nil { continue }
                if let key = spec.uniqueKey, keys.contains(key) { continue }
                if let batch = spec.batchID, let item = spec.batchItem, items.contains(BatchItemKey(batch: batch, item: item)) { continue }
                if let schedule = spec.schedule, let fireAt, fires.contains(FireKey(schedule: schedule, fireAt: fireAt)) { continue }
                if let batch = spec.batchID, state.batches[batch] == nil {
                    throw RotaError(.invalidInput, field: specs.count > 1 ? "tasks[\(index)].batch_id" : "batch_id",
                                    "no batch has id \(batch)")
                }
                if let key = spec.uniqueKey { keys.insert(key) }
                if let batch = spec.batchID, let item = spec.batchItem { items.insert(BatchItemKey(batch: batch, item: item)) }
                if let schedule = spec.schedule, let fireAt { fires.insert(FireKey(schedule: schedule, fireAt: fireAt)) }
            }
            var results: [EnqueueResult] = []
            results.reserveCapacity(specs.count)
            var added: [Int64: Int] = [:]
            var order: [Int64] = []
            for spec in specs {
                if let id = state.existing(uniqueKey: spec.uniqueKey, batchID: spec.batchID, batchItem: spec.batchItem,
                                           schedule: spec.schedule, fireAt: spec.fireAt?.unixMillis) {
                    results.append(EnqueueResult(id: id, inserted: false))
                    continue
                }
                let id = state.nextTaskID()
                var stored = StoredTask(
                    id: id, name: spec.name, queue: spec.queue, payload: spec.payload, priority: spec.priority,
                    runAt: spec.runAt?.unixMillis ?? now, maxAttempts: spec.maxAttempts, timeoutMs: spec.timeout?.milliseconds,
                    uniqueKey: spec.uniqueKey, batchID: spec.batchID, batchItem: spec.batchItem, schedule: spec.schedule,
                    fireAt: spec.fireAt?.unixMillis, createdAt: now)
                stored.poisonLimit = spec.poisonLimit ?? TaskSpec.defaultPoisonLimit
                state.insert(stored)
                results.append(EnqueueResult(id: id, inserted: true))
                if let batch = spec.batchID {
                    if added[batch] == nil { order.append(batch) }
                    added[batch, default: 0] += 1
                }
            }
            // Each batch's total grows once per enqueue; a completed batch with new items reopens.
            for batch in order {
                state.batches[batch]?.total += added[batch] ?? 0
                state.batchChanged(batch, finished: false, total: true, sealed: false)
            }
            return results
        }
    }

    // MARK: Running

    /// The scheduler's turn: ``completeAndClaimBlocking(_:_:worker:leaseUntil:now:)``, which never waits for
    /// long.
    public func completeAndClaim(_ completions: [Completion], _ requests: [ClaimRequest], worker: String,
                                 leaseUntil: Date, now: Date) async throws -> ClaimTurn {
        try completeAndClaimBlocking(completions, requests, worker: worker, leaseUntil: leaseUntil, now: now)
    }

    /// The scheduler's turn (see ``TaskStore/completeAndClaim(_:_:worker:leaseUntil:now:)``), at once: it
    /// only takes the store's lock.
    public func completeAndClaimBlocking(_ completions: [Completion], _ requests: [ClaimRequest], worker: String,
                                         leaseUntil: Date, now: Date) throws -> ClaimTurn {
        let requests = requests.filter { $0.limit > 0 && $0.names?.isEmpty != true }
        if completions.isEmpty && requests.isEmpty { return ClaimTurn(applied: [], claimed: [], filled: false) }
        return state.withLock { state in
            // In order: of two ends of the same attempt, the first applies.
            let applied = completions.map { Self.complete($0, in: &state) }
            var filled = false
            let claimed = Self.claim(requests, worker: worker, leaseUntil: leaseUntil, now: now, in: &state, filled: &filled)
            return ClaimTurn(applied: applied, claimed: claimed, filled: filled)
        }
    }

    /// Records one attempt's end while it holds the lease (same task, attempt and worker, and the task is
    /// `running`); false otherwise.
    static func complete(_ completion: Completion, in state: inout State) -> Bool {
        guard let task = state.tasks[completion.taskID], task.state == .running, task.attempts == completion.attempt,
              task.leaseOwner == completion.worker else { return false }
        let finished = completion.finishedAt.unixMillis
        var attempt = StoredAttempt(attempt: completion.attempt, worker: completion.worker,
                                    startedAt: completion.startedAt.unixMillis, finishedAt: finished,
                                    outcome: .succeeded, error: nil, result: nil)
        state.update(task.id) { task in
            task.leaseOwner = nil
            task.leaseUntil = nil
            task.updatedAt = finished
            switch completion.resolution {
            case .succeeded(let result):
                task.state = .succeeded
                task.finishedAt = finished
                attempt.result = result
            case .retry(let outcome, let error, let runAt):
                // A cancel requested while the attempt ran wins over the retry (the next claim would clear it).
                task.state = task.cancelRequested ? .cancelled : .scheduled
                task.finishedAt = task.cancelRequested ? finished : nil
                task.runAt = runAt.unixMillis
                task.lastError = error
                attempt.outcome = outcome
                attempt.error = error
            case .dead(let outcome, let error):
                task.state = .dead
                task.finishedAt = finished
                task.lastError = error
                attempt.outcome = outcome
                attempt.error = error
            case .cancelled(let reason):
                task.state = .cancelled
                task.finishedAt = finished
                task.lastError = reason
                attempt.outcome = .cancelled
                attempt.error = reason
            case .handBack(let reason):
                // Due again now, and a shutdown does not use up an attempt; the task's last error stays.
                task.state = task.cancelRequested ? .cancelled : .scheduled
                task.finishedAt = task.cancelRequested ? finished : nil
                task.runAt = finished
                task.maxAttempts += 1
                attempt.outcome = .cancelled
                attempt.error = reason
            }
        }
        state.addAttempt(attempt, to: task.id)
        return true
    }

    /// Claims for each request in order, within its limit and what is left of its budgets.
    static func claim(_ requests: [ClaimRequest], worker: String, leaseUntil: Date, now: Date, in state: inout State,
                      filled: inout Bool) -> [ClaimedTask] {
        let nowMs = now.unixMillis
        let leaseMs = leaseUntil.unixMillis
        var claimed: [ClaimedTask] = []
        var budgets = ClaimBudgetLedger()
        for request in requests {
            let limit = budgets.limit(for: request)
            if limit <= 0 { continue }
            let names = request.names.map(Set.init)
            var picked: [TaskID] = [], indices: [Int] = []
            if let keys = state.due[request.queue] {
                var index = 0
                while index < keys.count, picked.count < limit {
                    let key = keys[index]
                    if key.runAt > nowMs {
                        // The rest of this priority is not due yet.
                        index = State.indexPastPriority(key.priority, in: keys)
                        continue
                    }
                    if let names, let name = state.tasks[key.id]?.name, !names.contains(name) {
                        index += 1
                        continue
                    }
                    picked.append(key.id)
                    indices.append(index)
                    index += 1
                }
            }
            // Out of the queue's due list in one pass, not one shift of the list per task.
            state.removeDue(request.queue, at: indices)
            for id in picked {
                state.update(id, unlisted: true) { task in
                    task.state = .running
                    task.attempts += 1
                    task.leaseOwner = worker
                    task.leaseUntil = leaseMs
                    task.startedAt = nowMs
                    task.updatedAt = nowMs
                    task.cancelRequested = false
                    task.alone = false
                }
                guard let task = state.tasks[id] else { continue }
                claimed.append(ClaimedTask(id: id, name: task.name, queue: task.queue, payload: task.payload,
                                           attempt: task.attempts, maxAttempts: task.maxAttempts,
                                           timeout: task.timeoutMs.map { .milliseconds($0) }, priority: task.priority,
                                           runAt: Date(unixMillis: task.runAt), startedAt: now, losses: task.losses))
            }
            budgets.spend(picked.count, by: request)
            if picked.count >= limit { filled = true }
        }
        return claimed
    }

    /// The earliest `run_at` of a `scheduled` task of `queues` (and `names`: none when empty), due or not.
    public func nextRunAt(queues: [String], names: [String]?) async throws -> Date? {
        if names?.isEmpty == true { return nil } // like a claim: no handler, nothing to claim
        let names = names.map(Set.init)
        return state.withLock { state in
            var earliest: Int64?
            for queue in Set(queues) {
                let first = if let names {
                    state.earliestDue(in: queue) { state.tasks[$0].map { names.contains($0.name) } ?? false }
                } else {
                    state.earliestDue(in: queue)
                }
                if let first { earliest = min(earliest ?? first, first) }
            }
            return earliest.map { Date(unixMillis: $0) }
        }
    }

    /// How many tasks of `queues` (and `names`) are `scheduled` or `running`.
    public func countUnfinished(queues: [String], names: [String]?) async throws -> Int {
        let queues = Set(queues), names = names.map(Set.init)
        return state.withLock { state in
            state.counts.reduce(0) { sum, entry in
                let key = entry.key
                guard key.state == .scheduled || key.state == .running, queues.contains(key.queue),
                      names?.contains(key.name) ?? true else { return sum }
                return sum + entry.value
            }
        }
    }

    // MARK: Workers and leases

    /// Registers a worker, or re-registers it: its start stays, everything else is replaced and its stop
    /// cleared.
    public func registerWorker(_ worker: WorkerRecord) async throws {
        state.withLock { state in
            var record = worker
            record.startedAt = Date(unixMillis: worker.startedAt.unixMillis)
            record.heartbeatAt = Date(unixMillis: worker.heartbeatAt.unixMillis)
            record.stoppedAt = nil
            // Re-registering keeps the worker's start.
            if let old = state.workers[worker.id] { record.startedAt = old.startedAt }
            state.workers[worker.id] = record
        }
    }

    /// Records the worker's heartbeat and extends the lease of each of its running tasks.
    /// - Returns: the ids (ascending) of its running tasks a cancel was requested for.
    public func heartbeat(worker: String, now: Date, leaseUntil: Date) async throws -> [TaskID] {
        let leaseMs = leaseUntil.unixMillis
        return state.withLock { state in
            state.workers[worker]?.heartbeatAt = Date(unixMillis: now.unixMillis)
            var cancelled: [TaskID] = []
            for id in state.running.sorted() where state.tasks[id]?.leaseOwner == worker {
                // A lease extension changes nothing else (not even updated_at).
                state.tasks[id]?.leaseUntil = leaseMs
                if state.tasks[id]?.cancelRequested == true { cancelled.append(id) }
            }
            return cancelled
        }
    }

    /// Marks a worker stopped at `at` (its heartbeat becomes at least `at`); an unknown id changes nothing.
    public func stopWorker(_ id: String, at: Date) async throws {
        let atMs = at.unixMillis
        state.withLock { state in
            guard var worker = state.workers[id] else { return }
            worker.stoppedAt = Date(unixMillis: atMs)
            worker.heartbeatAt = Date(unixMillis: max(worker.heartbeatAt.unixMillis, atMs))
            state.workers[id] = worker
        }
    }

    /// All workers, most recent heartbeat first, then by id.
    public func workers() async throws -> [WorkerRecord] {
        state.withLock { Self.workers(in: $0) }
    }

    /// Every worker, most recent heartbeat first, then by id.
    static func workers(in state: State) -> [WorkerRecord] {
        state.workers.values.sorted {
            if $0.heartbeatAt != $1.heartbeatAt { return $0.heartbeatAt > $1.heartbeatAt }
            return Self.precedes($0.id, $1.id)
        }
    }

    /// Recovers the running tasks whose lease ended before `now` (see
    /// ``TaskStore/recoverExpiredLeases(now:)``); the lost attempt's error names the worker.
    /// - Returns: their ids, ascending.
    @discardableResult
    public func recoverExpiredLeases(now: Date) async throws -> [TaskID] {
        let nowMs = now.unixMillis
        return state.withLock { state in
            Self.recover(in: &state, now: nowMs, where: { ($0.leaseUntil ?? .max) < nowMs }) { task in
                "lease expired: worker \(task.leaseOwner ?? "?") stopped heartbeating"
            }
        }
    }

    /// Recovers the running tasks leased by `workers` at once, with `reason` as the lost attempts' error.
    /// - Returns: their ids, ascending.
    @discardableResult
    public func recoverLeases(ofWorkers workers: [String], now: Date, reason: String) async throws -> [TaskID] {
        if workers.isEmpty { return [] }
        let workers = Set(workers)
        return state.withLock { state in
            Self.recover(in: &state, now: now.unixMillis, where: { $0.leaseOwner.map(workers.contains) ?? false }) { _ in reason }
        }
    }

    /// Gives the running tasks that match a `lost` attempt and sends them back to `scheduled` (due now) with
    /// the attempt given back, or to `dead` at their poison limit (`cancelled` when a cancel was requested).
    /// - Returns: their ids, in order.
    static func recover(in state: inout State, now: Int64, where matches: (StoredTask) -> Bool,
                        error: (StoredTask) -> String) -> [TaskID] {
        let ids = state.running.filter { state.tasks[$0].map(matches) ?? false }.sorted()
        for id in ids {
            guard let task = state.tasks[id] else { continue }
            let message = error(task)
            state.addAttempt(StoredAttempt(attempt: task.attempts, worker: task.leaseOwner, startedAt: task.startedAt,
                                           finishedAt: now, outcome: .lost, error: message, result: nil), to: id)
            state.update(id) { task in
                // As SQLite's recovery: the lost attempt is given back; a loss while running alone is charged,
                // and at the poison limit the task is dead.
                let solo = task.soloLosses + (task.alone ? 1 : 0)
                let poisoned = solo >= task.poisonLimit
                task.state = task.cancelRequested ? .cancelled : (poisoned ? .dead : .scheduled)
                task.finishedAt = task.state == .scheduled ? nil : now
                task.lastError = !task.cancelRequested && poisoned
                    ? "poison: lost \(solo) times while running alone on its worker (poison limit \(task.poisonLimit)); "
                        + "it likely crashes its worker process. Last: \(message)"
                    : message
                task.losses += 1
                task.soloLosses = solo
                task.alone = false
                task.maxAttempts += 1
                task.runAt = now
                task.leaseOwner = nil
                task.leaseUntil = nil
                task.updatedAt = now
            }
        }
        return ids
    }

    /// Marks the attempt as running alone on its worker (see ``TaskStore/markRunningAlone(_:attempt:worker:)``).
    public func markRunningAlone(_ task: TaskID, attempt: Int, worker: String) async throws -> Bool {
        state.withLock { state in
            guard let stored = state.tasks[task], stored.state == .running, stored.attempts == attempt,
                  stored.leaseOwner == worker else { return false }
            state.update(task) { $0.alone = true }
            return true
        }
    }

    // MARK: Operations

    /// Cancels `scheduled` tasks and asks `running` ones to stop; ids are taken in order (an id given twice
    /// reports its second outcome).
    public func cancel(_ ids: [TaskID], now: Date) async throws -> [TaskID: CancelOutcome] {
        let nowMs = now.unixMillis
        return state.withLock { state in
            var outcomes: [TaskID: CancelOutcome] = [:]
            for id in ids {
                guard let task = state.tasks[id] else {
                    outcomes[id] = .notFound
                    continue
                }
                switch task.state {
                case .scheduled:
                    Self.cancelScheduled(id, in: &state, now: nowMs, error: "cancelled")
                    outcomes[id] = .cancelled
                case .running:
                    state.update(id) { task in
                        task.cancelRequested = true
                        task.updatedAt = nowMs
                    }
                    outcomes[id] = .requested
                default:
                    outcomes[id] = .notCancellable(task.state)
                }
            }
            return outcomes
        }
    }

    /// Cancels a scheduled task; its last error becomes `error` unless it has one.
    static func cancelScheduled(_ id: TaskID, in state: inout State, now: Int64, error: String) {
        state.update(id) { task in
            task.state = .cancelled
            task.finishedAt = now
            task.updatedAt = now
            task.lastError = task.lastError ?? error
        }
    }

    /// Makes `dead` and `cancelled` tasks `scheduled` again, due now, with at least one more attempt.
    public func retry(_ ids: [TaskID], now: Date) async throws -> [TaskID: RetryOutcome] {
        let nowMs = now.unixMillis
        return state.withLock { state in
            var outcomes: [TaskID: RetryOutcome] = [:]
            for id in ids {
                guard let task = state.tasks[id] else {
                    outcomes[id] = .notFound
                    continue
                }
                guard task.state == .dead || task.state == .cancelled else {
                    outcomes[id] = .notRetryable(task.state)
                    continue
                }
                Self.reschedule(id, in: &state, now: nowMs)
                outcomes[id] = .rescheduled
            }
            return outcomes
        }
    }

    /// Makes a task `scheduled` again, due now, with at least one more attempt.
    static func reschedule(_ id: TaskID, in state: inout State, now: Int64) {
        state.update(id) { task in
            task.state = .scheduled
            task.runAt = now
            task.updatedAt = now
            task.finishedAt = nil
            task.cancelRequested = false
            task.maxAttempts = max(task.maxAttempts, task.attempts + 1)
        }
    }

    /// Retries every task in `state` (optionally of one queue).
    /// - Throws: ``RotaError`` `.invalidInput` (field `state`) unless `state` is `dead` or `cancelled`.
    public func retryAll(state retried: TaskState, queue: String?, now: Date) async throws -> Int {
        guard retried == .dead || retried == .cancelled else {
            throw RotaError(.invalidInput, field: "state", "only dead or cancelled tasks can be retried, not \(retried)")
        }
        let nowMs = now.unixMillis
        return state.withLock { state in
            let ids = state.tasks.values.filter { $0.state == retried && (queue == nil || $0.queue == queue) }.map(\.id).sorted()
            for id in ids { Self.reschedule(id, in: &state, now: nowMs) }
            return ids.count
        }
    }

    /// Deletes the tasks of `states` (all finished states when empty) that finished before `olderThan`, with
    /// their attempts. A batch keeps its completion, and its `on_complete` task never runs twice.
    /// - Throws: ``RotaError`` `.invalidInput` (field `state`) for `scheduled` or `running`.
    public func purge(olderThan: Date, states: [TaskState]) async throws -> Int {
        let states = states.isEmpty ? [TaskState.succeeded, .dead, .cancelled] : states
        if let bad = states.first(where: { !$0.isTerminal }) {
            throw RotaError(.invalidInput, field: "state", "\(bad) tasks are never purged; only succeeded, dead or cancelled")
        }
        let before = olderThan.unixMillis
        let purged = Set(states)
        return state.withLock { state in
            let ids = state.tasks.values.filter { task in
                guard let finished = task.finishedAt else { return false }
                return finished < before && purged.contains(task.state)
            }.map(\.id).sorted()
            for id in ids { state.delete(id) }
            return ids.count
        }
    }

    // MARK: Queries

    /// One task, with its batch's name and the result of its latest successful attempt; nil when unknown.
    public func task(_ id: TaskID) async throws -> TaskRecord? {
        state.withLock { state in state.tasks[id].map { Self.record($0, in: state) } }
    }

    /// A task's finished attempts, in order.
    public func attempts(of id: TaskID) async throws -> [AttemptRecord] {
        state.withLock { state in
            (state.attempts[id] ?? []).map { row in
                AttemptRecord(taskID: id, attempt: row.attempt, worker: row.worker,
                              startedAt: row.startedAt.map { Date(unixMillis: $0) }, finishedAt: Date(unixMillis: row.finishedAt),
                              outcome: row.outcome, error: row.error, result: row.result)
            }
        }
    }

    /// The tasks matching `filter`, newest (highest id) first, at most `filter.limit`.
    public func list(_ filter: TaskFilter) async throws -> [TaskRecord] {
        let limit = max(0, filter.limit)
        if limit == 0 { return [] }
        let states = Set(filter.states)
        let since = filter.createdSince?.unixMillis
        return state.withLock { state in
            var batchID: Int64?
            if let batch = filter.batch {
                guard let id = state.batchIDs[batch] else { return [] }
                batchID = id
            }
            let matching = state.tasks.values.filter { task in
                if !states.isEmpty, !states.contains(task.state) { return false }
                if let queue = filter.queue, task.queue != queue { return false }
                if let name = filter.name, task.name != name { return false }
                if let batchID, task.batchID != batchID { return false }
                if let schedule = filter.schedule, task.schedule != schedule { return false }
                if let since, task.createdAt < since { return false }
                if let before = filter.beforeID, task.id >= before { return false }
                return true
            }
            return matching.sorted { $0.id > $1.id }.prefix(limit).map { Self.record($0, in: state) }
        }
    }

    /// A task as ``TaskRecord``: its batch's name, and the result of its latest successful attempt.
    static func record(_ task: StoredTask, in state: State) -> TaskRecord {
        let result = state.attempts[task.id]?.last(where: { $0.outcome == .succeeded })?.result
        return TaskRecord(
            id: task.id, name: task.name, queue: task.queue, payload: task.payload, state: task.state,
            priority: task.priority, runAt: Date(unixMillis: task.runAt), attempts: task.attempts,
            maxAttempts: task.maxAttempts, timeout: task.timeoutMs.map { .milliseconds($0) }, leaseOwner: task.leaseOwner,
            leaseUntil: task.leaseUntil.map { Date(unixMillis: $0) }, startedAt: task.startedAt.map { Date(unixMillis: $0) },
            cancelRequested: task.cancelRequested, uniqueKey: task.uniqueKey,
            batch: task.batchID.flatMap { state.batches[$0]?.name }, batchItem: task.batchItem, schedule: task.schedule,
            fireAt: task.fireAt.map { Date(unixMillis: $0) }, createdAt: Date(unixMillis: task.createdAt),
            updatedAt: Date(unixMillis: task.updatedAt), finishedAt: task.finishedAt.map { Date(unixMillis: $0) },
            lastError: task.lastError, result: result, losses: task.losses, soloLosses: task.soloLosses,
            poisonLimit: task.poisonLimit)
    }

    /// Counts per state (every state present) and per queue, the oldest due task, and the tasks that
    /// succeeded or died in the minute and the hour before `now`.
    public func stats(now: Date) async throws -> StoreStats {
        let nowMs = now.unixMillis
        return state.withLock { state in
            var states = Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, 0) })
            var queues: [String: [TaskState: Int]] = [:]
            var byName: [String: Int] = [:]
            for (key, count) in state.counts where count > 0 {
                states[key.state, default: 0] += count
                queues[key.queue, default: [:]][key.state, default: 0] += count
                if key.state == .scheduled { byName[key.name, default: 0] += count }
            }
            var oldest: Int64?
            for queue in state.due.keys {
                if let first = state.earliestDue(in: queue) { oldest = min(oldest ?? first, first) }
            }
            var minute = 0, hour = 0
            for task in state.tasks.values where task.state == .succeeded || task.state == .dead {
                guard let finished = task.finishedAt else { continue }
                if finished >= nowMs - 60_000 { minute += 1 }
                if finished >= nowMs - 3_600_000 { hour += 1 }
            }
            return StoreStats(states: states, queues: queues,
                              oldestDueAt: oldest.flatMap { $0 <= nowMs ? Date(unixMillis: $0) : nil },
                              finishedLastMinute: minute, finishedLastHour: hour, scheduledByName: byName)
        }
    }

    /// The scheduled tasks, per queue and name, that no live worker both serves and handles (optionally
    /// counted in one batch only), by queue then name.
    public func unhandledTasks(now: Date, batch: Int64?) async throws -> [UnhandledTasks] {
        state.withLock { state in
            var groups: [(queue: String, name: String, count: Int)] = state.counts.compactMap { key, count in
                key.state == .scheduled && count > 0 ? (key.queue, key.name, count) : nil
            }
            if groups.isEmpty { return [] }
            groups.sort { $0.queue != $1.queue ? Self.precedes($0.queue, $1.queue) : Self.precedes($0.name, $1.name) }
            let live = Self.workers(in: state).filter { $0.isLive(now: now) }
            let unhandled = UnhandledTasks.among(groups.map { ($0.queue, $0.name, $0.count) }, live: live)
            guard let batch, !unhandled.isEmpty else { return unhandled }
            // The batch's own scheduled items per queue and name.
            var inBatch: [String: [String: Int]] = [:]
            for task in state.tasks.values where task.batchID == batch && task.state == .scheduled {
                inBatch[task.queue, default: [:]][task.name, default: 0] += 1
            }
            return UnhandledTasks.counted(unhandled, inBatch: inBatch)
        }
    }
}

extension MemoryTaskStore {
    /// True when `lhs` sorts before `rhs` as SQLite's default (binary) collation sorts text: by UTF-8 bytes.
    static func precedes(_ lhs: String, _ rhs: String) -> Bool {
        lhs.utf8.lexicographicallyPrecedes(rhs.utf8)
    }
}
