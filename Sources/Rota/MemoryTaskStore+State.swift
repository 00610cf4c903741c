import Foundation

// The store's data: rows as the SQLite schema has them (instants in Unix milliseconds), the indexes its
// queries need, and the few mutations every method goes through, which keep the indexes, the counts and
// the batches' progress (the work of the SQLite triggers) in step with the tasks.

extension MemoryTaskStore {
    /// A row of `tasks`.
    struct StoredTask: Sendable {
        var id: TaskID
        var name: String
        var queue: String
        var payload: String
        var state: TaskState
        var priority: Int
        var runAt: Int64
        var attempts: Int
        var maxAttempts: Int
        var timeoutMs: Int64?
        var leaseOwner: String?
        var leaseUntil: Int64?
        var startedAt: Int64?
        var cancelRequested: Bool
        var uniqueKey: String?
        var batchID: Int64?
        var batchItem: String?
        var schedule: String?
        var fireAt: Int64?
        var createdAt: Int64
        var updatedAt: Int64
        var finishedAt: Int64?
        var lastError: String?
        /// Attempts lost with their worker; of those, the ones lost while running alone; whether the
        /// running attempt runs alone; and the solo losses that make it dead (see ``TaskSpec/poisonLimit``).
        var losses = 0
        var soloLosses = 0
        var alone = false
        var poisonLimit = TaskSpec.defaultPoisonLimit

        /// A new `scheduled` task with no attempt yet.
        init(id: TaskID, name: String, queue: String, payload: String, priority: Int, runAt: Int64, maxAttempts: Int,
             timeoutMs: Int64?, uniqueKey: String? = nil, batchID: Int64? = nil, batchItem: String? = nil,
             schedule: String? = nil, fireAt: Int64? = nil, createdAt: Int64) {
            self.id = id; self.name = name; self.queue = queue; self.payload = payload; state = .scheduled
            self.priority = priority; self.runAt = runAt; attempts = 0; self.maxAttempts = maxAttempts
            self.timeoutMs = timeoutMs; leaseOwner = nil; leaseUntil = nil; startedAt = nil; cancelRequested = false
            self.uniqueKey = uniqueKey; self.batchID = batchID; self.batchItem = batchItem; self.schedule = schedule
            self.fireAt = fireAt; self.createdAt = createdAt; updatedAt = createdAt; finishedAt = nil; lastError = nil
        }

        /// Its place in the claim order (see ``DueKey``).
        var dueKey: DueKey { DueKey(priority: priority, runAt: runAt, id: id) }
    }

    /// A row of `attempts`.
    struct StoredAttempt: Sendable {
        var attempt: Int
        var worker: String?
        var startedAt: Int64?
        var finishedAt: Int64
        var outcome: AttemptOutcome
        var error: String?
        var result: String?
    }

    /// A row of `batches`.
    struct StoredBatch: Sendable {
        var id: Int64
        var name: String
        var queue: String
        var total = 0
        var finished = 0
        var sealed = false
        var onComplete: String?
        var createdAt: Int64
        var completedAt: Int64?
        /// True once its `on_complete` task was enqueued (migration 8): it never is again.
        var onCompleteFired = false

        var record: BatchRecord {
            BatchRecord(id: id, name: name, queue: queue, total: total, finished: finished, sealed: sealed,
                        onComplete: onComplete, createdAt: Date(unixMillis: createdAt),
                        completedAt: completedAt.map { Date(unixMillis: $0) })
        }
    }

    /// A row of `schedules`; `spec` is as the columns give it back (timeout in whole milliseconds).
    struct StoredSchedule: Sendable {
        /// The insertion order (SQLite's rowid): due schedules fire in this order.
        var rowID: Int64
        var spec: ScheduleSpec
        var active: Bool
        var nextFireAt: Int64?
        var lastFireAt: Int64?
        var createdAt: Int64
        var updatedAt: Int64

        var record: ScheduleRecord {
            ScheduleRecord(spec: spec, active: active, nextFireAt: nextFireAt.map { Date(unixMillis: $0) },
                           lastFireAt: lastFireAt.map { Date(unixMillis: $0) }, createdAt: Date(unixMillis: createdAt),
                           updatedAt: Date(unixMillis: updatedAt))
        }
    }

    /// A scheduled task's place in its queue's claim order: priority (higher first), then `run_at`, then id.
    struct DueKey: Comparable, Sendable {
        var priority: Int
        var runAt: Int64
        var id: TaskID

        static func < (lhs: DueKey, rhs: DueKey) -> Bool {
            if lhs.priority != rhs.priority { return lhs.priority > rhs.priority }
            if lhs.runAt != rhs.runAt { return lhs.runAt < rhs.runAt }
            return lhs.id < rhs.id
        }
    }

    /// The key of `task_counts`.
    struct CountKey: Hashable, Sendable {
        var queue: String
        var name: String
        var state: TaskState
    }

    /// The unique (batch, item) of a batch item.
    struct BatchItemKey: Hashable, Sendable {
        var batch: Int64
        var item: String
    }

    /// The unique (schedule, fire instant) of a fired task.
    struct FireKey: Hashable, Sendable {
        var schedule: String
        var fireAt: Int64
    }

    /// Everything the store holds, guarded by the store's mutex.
    struct State: Sendable {
        var tasks: [TaskID: StoredTask] = [:]
        /// The largest id in `tasks` (stale after a delete until ``nextTaskID()`` recomputes it).
        private var largestTaskID: TaskID = 0
        private var largestTaskIDStale = false
        /// Each task's attempts, in attempt order.
        var attempts: [TaskID: [StoredAttempt]] = [:]
        var uniqueKeys: [String: TaskID] = [:]
        var batchItems: [BatchItemKey: TaskID] = [:]
        var fires: [FireKey: TaskID] = [:]
        /// The scheduled tasks of each queue, in claim order.
        var due: [String: [DueKey]] = [:]
        /// The running tasks.
        var running: Set<TaskID> = []
        /// Tasks per queue, name and state (entries of 0 are removed).
        var counts: [CountKey: Int] = [:]
        var batches: [Int64: StoredBatch] = [:]
        var batchIDs: [String: Int64] = [:]
        var lastBatchID: Int64 = 0
        var schedules: [String: StoredSchedule] = [:]
        var lastScheduleRowID: Int64 = 0
        var workers: [String: WorkerRecord] = [:]

        // MARK: Ids

        /// The id the next inserted task gets: one more than the largest id in the table, as SQLite gives a
        /// rowid (so after the newest tasks are purged, their ids are given again, as they are in SQLite).
        mutating func nextTaskID() -> TaskID {
            if largestTaskIDStale {
                largestTaskID = tasks.keys.max() ?? 0
                largestTaskIDStale = false
            }
            return largestTaskID + 1
        }

        // MARK: Unique keys

        /// The existing task a new task would conflict with: by unique key, then batch item, then schedule fire.
        func existing(uniqueKey: String?, batchID: Int64?, batchItem: String?, schedule: String?, fireAt: Int64?) -> TaskID? {
            if let uniqueKey, let id = uniqueKeys[uniqueKey] { return id }
            if let batchID, let batchItem, let id = batchItems[BatchItemKey(batch: batchID, item: batchItem)] { return id }
            if let schedule, let fireAt, let id = fires[FireKey(schedule: schedule, fireAt: fireAt)] { return id }
            return nil
        }

        // MARK: Tasks

        /// Inserts a task whose id comes from ``nextTaskID()`` and whose keys conflict with no task.
        /// Batch totals are the caller's (an enqueue adds its items once, as the SQLite store does).
        mutating func insert(_ task: StoredTask) {
            tasks[task.id] = task
            if task.id > largestTaskID { largestTaskID = task.id }
            if let key = task.uniqueKey { uniqueKeys[key] = task.id }
            if let batch = task.batchID, let item = task.batchItem { batchItems[BatchItemKey(batch: batch, item: item)] = task.id }
            if let schedule = task.schedule, let fire = task.fireAt { fires[FireKey(schedule: schedule, fireAt: fire)] = task.id }
            index(task)
        }

        /// Changes a task (never its id, queue, name or keys), keeping the indexes and counts in step; a batch
        /// item that finishes or is pending again moves its batch's `finished` (which may complete or reopen
        /// the batch, as the SQLite triggers do).
        /// - Parameter unlisted: true when the caller already took the (scheduled) task out of `due` (see
        ///   ``removeDue(_:at:)``).
        mutating func update(_ id: TaskID, unlisted: Bool = false, _ body: (inout StoredTask) -> Void) {
            guard var task = tasks[id] else { return }
            let old = task
            body(&task)
            if old.state != task.state || old.priority != task.priority || old.runAt != task.runAt {
                unindex(old, unlisted: unlisted)
                index(task)
            }
            tasks[id] = task
            if let batch = task.batchID, old.state.isTerminal != task.state.isTerminal {
                batches[batch]?.finished += task.state.isTerminal ? 1 : -1
                batchChanged(batch, finished: true, total: false, sealed: false)
            }
        }

        /// Deletes a task and its attempts; a batch item leaves its batch's `total` (and `finished`).
        mutating func delete(_ id: TaskID) {
            guard let task = tasks.removeValue(forKey: id) else { return }
            unindex(task)
            attempts[id] = nil
            if let key = task.uniqueKey, uniqueKeys[key] == id { uniqueKeys[key] = nil }
            if let batch = task.batchID, let item = task.batchItem {
                let key = BatchItemKey(batch: batch, item: item)
                if batchItems[key] == id { batchItems[key] = nil }
            }
            if let schedule = task.schedule, let fire = task.fireAt {
                let key = FireKey(schedule: schedule, fireAt: fire)
                if fires[key] == id { fires[key] = nil }
            }
            if id == largestTaskID { largestTaskIDStale = true }
            if let batch = task.batchID {
                batches[batch]?.total -= 1
                if task.state.isTerminal { batches[batch]?.finished -= 1 }
                batchChanged(batch, finished: true, total: true, sealed: false)
            }
        }

        /// Records an attempt unless one with its number is already recorded (`ON CONFLICT DO NOTHING`).
        mutating func addAttempt(_ attempt: StoredAttempt, to id: TaskID) {
            var list = attempts[id] ?? []
            if list.contains(where: { $0.attempt == attempt.attempt }) { return }
            if let last = list.last, last.attempt > attempt.attempt {
                list.insert(attempt, at: list.firstIndex { $0.attempt > attempt.attempt } ?? list.endIndex)
            } else {
                list.append(attempt)
            }
            attempts[id] = list
        }

        private mutating func index(_ task: StoredTask) {
            counts[CountKey(queue: task.queue, name: task.name, state: task.state), default: 0] += 1
            switch task.state {
            case .scheduled:
                let key = task.dueKey
                var keys = due[task.queue] ?? []
                due[task.queue] = nil // keeps the array uniquely referenced while it changes
                keys.insert(key, at: Self.insertionIndex(of: key, in: keys))
                due[task.queue] = keys
            case .running:
                running.insert(task.id)
            default:
                break
            }
        }

        private mutating func unindex(_ task: StoredTask, unlisted: Bool = false) {
            let countKey = CountKey(queue: task.queue, name: task.name, state: task.state)
            let count = (counts[countKey] ?? 0) - 1
            counts[countKey] = count > 0 ? count : nil
            switch task.state {
            case .scheduled where unlisted:
                break
            case .scheduled:
                let key = task.dueKey
                guard var keys = due[task.queue] else { return }
                due[task.queue] = nil
                let index = Self.insertionIndex(of: key, in: keys)
                if index < keys.count, keys[index] == key { keys.remove(at: index) }
                if !keys.isEmpty { due[task.queue] = keys }
            case .running:
                running.remove(task.id)
            default:
                break
            }
        }

        /// Takes the keys at `indices` (ascending) out of a queue's `due` list in one pass: a claim's tasks,
        /// before each is updated with `unlisted: true`.
        mutating func removeDue(_ queue: String, at indices: [Int]) {
            guard let first = indices.first, var keys = due[queue] else { return }
            due[queue] = nil // keeps the array uniquely referenced while it changes
            var write = first, next = 0
            for read in first..<keys.count {
                if next < indices.count, indices[next] == read {
                    next += 1
                    continue
                }
                keys[write] = keys[read]
                write += 1
            }
            keys.removeLast(keys.count - write)
            if !keys.isEmpty { due[queue] = keys }
        }

        /// The earliest `run_at` among a queue's scheduled tasks whose name `matches`: the first matching
        /// task of each priority (its tasks are in `run_at` order).
        func earliestDue(in queue: String, where matches: (TaskID) -> Bool = { _ in true }) -> Int64? {
            guard let keys = due[queue] else { return nil }
            var earliest: Int64?
            var index = 0
            while index < keys.count {
                let end = Self.indexPastPriority(keys[index].priority, in: keys)
                if let first = keys[index..<end].first(where: { matches($0.id) }) {
                    earliest = min(earliest ?? first.runAt, first.runAt)
                }
                index = end
            }
            return earliest
        }

        /// The first index of `keys` (sorted) whose key is not below `key`.
        static func insertionIndex(of key: DueKey, in keys: [DueKey]) -> Int {
            var low = 0, high = keys.count
            while low < high {
                let mid = (low + high) / 2
                if keys[mid] < key { low = mid + 1 } else { high = mid }
            }
            return low
        }

        /// The first index of `keys` (sorted) past the tasks of priority `priority` or higher.
        static func indexPastPriority(_ priority: Int, in keys: [DueKey]) -> Int {
            var low = 0, high = keys.count
            while low < high {
                let mid = (low + high) / 2
                if keys[mid].priority >= priority { low = mid + 1 } else { high = mid }
            }
            return low
        }

        // MARK: Batches

        /// What the batch triggers do after an update of a batch's `finished`, `total` or `sealed`: a
        /// completed batch with items pending again reopens (`batches_reopen`, migration 8); a sealed batch
        /// whose items all finished completes, enqueueing its `on_complete` task the first time only
        /// (`batches_complete`).
        mutating func batchChanged(_ id: Int64, finished: Bool, total: Bool, sealed: Bool) {
            guard var batch = batches[id] else { return }
            if finished || total, batch.completedAt != nil, batch.finished < batch.total {
                batch.completedAt = nil
            }
            var onComplete: String?
            if finished || sealed, batch.sealed, batch.finished >= batch.total, batch.completedAt == nil {
                // Like the trigger, the completion is stamped with the clock, not a caller's `now`.
                batch.completedAt = Date().unixMillis
                if !batch.onCompleteFired { onComplete = batch.onComplete }
                batch.onCompleteFired = true
            }
            batches[id] = batch
            if let onComplete { enqueueOnComplete(onComplete, of: batch) }
        }

        /// Enqueues a completed batch's `on_complete` task, unique per batch (`rota:batch-complete:ID`):
        /// its name and queue (the batch's by default) and its payload (minified; `{"batch": NAME}` by
        /// default), read from the spec as SQLite's `json_extract` reads them.
        private mutating func enqueueOnComplete(_ spec: String, of batch: StoredBatch) {
            let key = "rota:batch-complete:\(batch.id)"
            guard uniqueKeys[key] == nil, let parts = BatchSpec.OnCompleteTask(spec) else { return }
            let now = Date().unixMillis
            insert(StoredTask(id: nextTaskID(), name: parts.name, queue: parts.queue ?? batch.queue,
                              payload: parts.payload ?? BatchSpec.OnCompleteTask.defaultPayload(batch: batch.name),
                              priority: 0, runAt: now, maxAttempts: 3, timeoutMs: nil, uniqueKey: key, createdAt: now))
        }
    }
}
