import Foundation

// MARK: Schedules

extension MemoryTaskStore {
    /// Makes the stored schedules match `specs` (see ``TaskStore/syncSchedules(_:now:firstFire:)``): new ones
    /// get `firstFire(spec)`; a changed expression or zone, a reactivation or a missing next fire recomputes
    /// it; absent ones are deactivated. `firstFire` runs under the store's lock: it must not call the store.
    /// - Throws: ``RotaError`` `.invalidInput` for a bad spec; `.database` for a new name given twice (as
    ///   SQLite's unique name refuses it). Nothing is written then.
    public func syncSchedules(_ specs: [ScheduleSpec], now: Date,
                              firstFire: @escaping @Sendable (ScheduleSpec) -> Date?) async throws -> ScheduleSyncResult {
        for spec in specs {
            try TaskSpec(name: spec.taskName, payload: spec.payload, queue: spec.queue, priority: spec.priority,
                         maxAttempts: spec.maxAttempts, timeout: spec.timeout).validate(maxPayloadBytes: maxPayloadBytes)
            if spec.name.isEmpty { throw RotaError(.invalidInput, field: "schedule", "a schedule needs a name") }
        }
        let nowMs = now.unixMillis
        let names = Set(specs.map(\.name))
        return try state.withLock { state in
            // A name given twice is an update twice when the schedule exists; when it is new, SQLite refuses
            // the second row (the whole sync fails, nothing written).
            var new: Set<String> = []
            for spec in specs where state.schedules[spec.name] == nil && !new.insert(spec.name).inserted {
                throw RotaError(.database, "UNIQUE constraint failed: schedules.name (schedule \(spec.name) is given twice)")
            }
            var result = ScheduleSyncResult(added: [], changed: [], removed: [])
            let existing = state.schedules
            for spec in specs {
                // Compared with the schedule as it was before the sync, written over the row as it is now.
                if let old = existing[spec.name], var row = state.schedules[spec.name] {
                    let timingChanged = old.spec.expression != spec.expression || old.spec.timeZone != spec.timeZone
                    if old.spec != spec || !old.active {
                        row.spec = Self.stored(spec)
                        row.updatedAt = nowMs
                        row.active = true
                        if old.spec != spec { result.changed.append(spec.name) }
                    }
                    if timingChanged || !old.active || old.nextFireAt == nil {
                        row.nextFireAt = firstFire(spec)?.unixMillis
                    }
                    state.schedules[spec.name] = row
                } else {
                    state.lastScheduleRowID += 1
                    state.schedules[spec.name] = StoredSchedule(
                        rowID: state.lastScheduleRowID, spec: Self.stored(spec), active: true,
                        nextFireAt: firstFire(spec)?.unixMillis, lastFireAt: nil, createdAt: nowMs, updatedAt: nowMs)
                    result.added.append(spec.name)
                }
            }
            for (name, record) in existing.sorted(by: { Self.precedes($0.key, $1.key) })
            where record.active && !names.contains(name) {
                state.schedules[name]?.active = false
                state.schedules[name]?.updatedAt = nowMs
                result.removed.append(name)
            }
            return result
        }
    }

    /// A spec as the schedules table gives it back: the timeout and the jitter in whole milliseconds.
    static func stored(_ spec: ScheduleSpec) -> ScheduleSpec {
        var spec = spec
        spec.timeout = spec.timeout.map { .milliseconds($0.milliseconds) }
        spec.jitter = spec.jitter.map { .milliseconds($0.milliseconds) }
        return spec
    }

    /// Fires every active schedule due at `now`, in the order the schedules were first stored (see
    /// ``TaskStore/fireDueSchedules(now:plan:)``); each task runs at its fire instant plus the schedule's
    /// jitter delay (``ScheduleSpec/runAt(forFire:)``); a schedule with overlap `skip` fires only its latest planned
    /// instant, and nothing while its latest task is unfinished. `plan` runs under the store's lock: it must
    /// not call the store.
    public func fireDueSchedules(now: Date, plan: @escaping @Sendable (ScheduleRecord) -> FirePlan) async throws -> [EnqueueResult] {
        let nowMs = now.unixMillis
        return state.withLock { state in
            let due = state.schedules.values
                .filter { $0.active && ($0.nextFireAt.map { $0 <= nowMs } ?? false) }
                .sorted { $0.rowID < $1.rowID }
            var results: [EnqueueResult] = []
            for schedule in due {
                let spec = schedule.spec
                let decided = plan(schedule.record)
                var fires = decided.fires.map(\.unixMillis)
                if spec.overlap == .skip, let last = fires.last {
                    fires = Self.latestFireIsUnfinished(of: spec.name, in: state) ? [] : [last]
                }
                for fire in fires {
                    if let id = state.fires[FireKey(schedule: spec.name, fireAt: fire)] {
                        results.append(EnqueueResult(id: id, inserted: false))
                        continue
                    }
                    let id = state.nextTaskID()
                    state.insert(StoredTask(
                        id: id, name: spec.taskName, queue: spec.queue, payload: spec.payload, priority: spec.priority,
                        runAt: fire + spec.delayMillis(forFire: Date(unixMillis: fire)), maxAttempts: spec.maxAttempts, timeoutMs: spec.timeout?.milliseconds,
                        schedule: spec.name, fireAt: fire, createdAt: nowMs))
                    results.append(EnqueueResult(id: id, inserted: true))
                }
                state.schedules[spec.name]?.nextFireAt = decided.nextFireAt?.unixMillis
                if let last = fires.last { state.schedules[spec.name]?.lastFireAt = last }
                state.schedules[spec.name]?.updatedAt = nowMs
            }
            return results
        }
    }

    /// True when the schedule's latest task (by fire instant) is `scheduled` or `running`: an overlap.
    static func latestFireIsUnfinished(of schedule: String, in state: State) -> Bool {
        var latest: StoredTask?
        for task in state.tasks.values where task.schedule == schedule {
            guard let current = latest else { latest = task; continue }
            // Fire instant descending, a task without one last (as SQLite orders NULLs in DESC).
            switch (task.fireAt, current.fireAt) {
            case let (new?, old?): if new > old { latest = task }
            case (.some, nil): latest = task
            case (nil, nil): if task.id > current.id { latest = task }
            case (nil, .some): break
            }
        }
        guard let latest else { return false }
        return latest.state == .scheduled || latest.state == .running
    }

    /// Every stored schedule, active ones first, then by name (byte order, as SQLite sorts text).
    public func schedules() async throws -> [ScheduleRecord] {
        state.withLock { state in
            state.schedules.values.sorted {
                if $0.active != $1.active { return $0.active }
                return Self.precedes($0.spec.name, $1.spec.name)
            }.map(\.record)
        }
    }

    /// The earliest next fire of any active schedule.
    public func nextScheduleFire() async throws -> Date? {
        state.withLock { state in
            state.schedules.values.filter(\.active).compactMap(\.nextFireAt).min().map { Date(unixMillis: $0) }
        }
    }
}

// MARK: Batches

extension MemoryTaskStore {
    /// Creates the batch `spec.name` (created now, by the clock), or opens it again unsealed, its
    /// `on_complete` replaced when `spec` has one (its queue and completion stay).
    public func openBatch(_ spec: BatchSpec) async throws -> BatchRecord {
        let now = Self.now()
        return state.withLock { state in
            if let id = state.batchIDs[spec.name], var batch = state.batches[id] {
                // Reopened for more items: unsealed, its on_complete replaced when one is given (its queue stays).
                batch.sealed = false
                batch.onComplete = spec.onComplete ?? batch.onComplete
                state.batches[id] = batch
                state.batchChanged(id, finished: false, total: false, sealed: true)
                return state.batches[id]?.record ?? batch.record
            }
            state.lastBatchID += 1
            let batch = StoredBatch(id: state.lastBatchID, name: spec.name, queue: spec.queue, onComplete: spec.onComplete,
                                    createdAt: now)
            state.batches[batch.id] = batch
            state.batchIDs[batch.name] = batch.id
            return batch.record
        }
    }

    /// Seals the batch: it completes (enqueueing its `on_complete` task, the first time only) at once when
    /// every item already finished.
    /// - Throws: ``RotaError`` `.notFound` for an unknown batch id.
    public func sealBatch(_ batch: Int64) async throws -> BatchRecord {
        try state.withLock { state in
            guard state.batches[batch] != nil else { throw RotaError(.notFound, "no batch with id \(batch)") }
            state.batches[batch]?.sealed = true
            state.batchChanged(batch, finished: false, total: false, sealed: true)
            guard let record = state.batches[batch]?.record else { throw RotaError(.notFound, "no batch with id \(batch)") }
            return record
        }
    }

    /// The batch named `name`, or nil.
    public func batch(named name: String) async throws -> BatchRecord? {
        state.withLock { state in state.batchIDs[name].flatMap { state.batches[$0]?.record } }
    }

    /// Batches, newest first; a negative `limit` is no limit (as SQL's `LIMIT`).
    public func batches(limit: Int) async throws -> [BatchRecord] {
        state.withLock { state in
            let newest = state.batches.values.sorted { $0.id > $1.id }
            // As SQL's LIMIT: a negative limit is no limit.
            return (limit < 0 ? newest[...] : newest.prefix(limit)).map(\.record)
        }
    }

    /// A batch's items per state (every state present), and its finishes: in the minute before `now`, first
    /// and last.
    /// - Throws: ``RotaError`` `.notFound` for an unknown batch.
    public func batchStatus(_ name: String, now: Date) async throws -> BatchStatus {
        let since = now.unixMillis - 60_000
        return try state.withLock { state in
            guard let id = state.batchIDs[name], let batch = state.batches[id] else {
                throw RotaError(.notFound, "no batch named \(name)")
            }
            var states = Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, 0) })
            var recent = 0
            var first: Int64?, last: Int64?
            for task in state.tasks.values where task.batchID == id {
                states[task.state, default: 0] += 1
                guard let finished = task.finishedAt else { continue }
                if finished >= since { recent += 1 }
                first = min(first ?? finished, finished)
                last = max(last ?? finished, finished)
            }
            return BatchStatus(batch: batch.record, states: states, finishedLastMinute: recent,
                               firstFinishedAt: first.map { Date(unixMillis: $0) }, lastFinishedAt: last.map { Date(unixMillis: $0) })
        }
    }

    /// Retries the batch's `dead` items, due now with at least one more attempt; a completed batch reopens.
    /// - Returns: how many were rescheduled.
    /// - Throws: ``RotaError`` `.notFound` for an unknown batch.
    public func retryBatch(_ name: String, now: Date) async throws -> Int {
        let nowMs = now.unixMillis
        return try state.withLock { state in
            guard let id = state.batchIDs[name] else { throw RotaError(.notFound, "no batch named \(name)") }
            let dead = state.tasks.values.filter { $0.batchID == id && $0.state == .dead }.map(\.id).sorted()
            for task in dead { Self.reschedule(task, in: &state, now: nowMs) }
            return dead.count
        }
    }

    /// Cancels the batch's `scheduled` items and asks its `running` ones to stop.
    /// - Returns: how many were cancelled, and how many asked to stop.
    /// - Throws: ``RotaError`` `.notFound` for an unknown batch.
    public func cancelBatch(_ name: String, now: Date) async throws -> (cancelled: Int, requested: Int) {
        let nowMs = now.unixMillis
        return try state.withLock { state in
            guard let id = state.batchIDs[name] else { throw RotaError(.notFound, "no batch named \(name)") }
            let scheduled = state.tasks.values.filter { $0.batchID == id && $0.state == .scheduled }.map(\.id).sorted()
            for task in scheduled { Self.cancelScheduled(task, in: &state, now: nowMs, error: "batch cancelled") }
            let running = state.tasks.values.filter { $0.batchID == id && $0.state == .running }.map(\.id).sorted()
            for task in running {
                state.update(task) { task in
                    task.cancelRequested = true
                    task.updatedAt = nowMs
                }
            }
            return (scheduled.count, running.count)
        }
    }
}
